"""The export status table: exports, download links, audit events, users and keys."""
