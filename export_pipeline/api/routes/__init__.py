"""One router per resource, included under `/api/v1` by `api.main`."""
