"""The OpenAPI document describes every route, its answers and its authentication."""

from __future__ import annotations


def test_the_openapi_document_describes_the_interface(client):
    response = client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    operations = {
        (method.upper(), path): operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    expected = {
        ("GET", "/api/v1/health"): [],
        ("GET", "/api/v1/sources"): ["401"],
        ("POST", "/api/v1/sources/{source_id}/exports"): ["401", "403", "404", "409", "422", "503"],
        ("GET", "/api/v1/sources/{source_id}/exports"): ["401", "404", "422"],
        ("POST", "/api/v1/sources/{source_id}/exports/preview"): ["401", "403", "404", "422"],
        ("POST", "/api/v1/exports/{export_id}/cancel"): ["401", "403", "404", "409"],
        ("POST", "/api/v1/exports/{export_id}/retry"): ["401", "403", "404", "409"],
        ("GET", "/api/v1/exports/{export_id}"): ["401", "404"],
        ("POST", "/api/v1/exports/{export_id}/links"): ["401", "403", "404", "409", "422"],
        ("GET", "/api/v1/exports/{export_id}/links"): ["401", "403", "404"],
        ("DELETE", "/api/v1/links/{link_id}"): ["401", "403", "404"],
        ("GET", "/api/v1/downloads/{token}"): ["401", "404", "409", "410", "416"],
        ("HEAD", "/api/v1/downloads/{token}"): ["401", "404", "409", "410"],
        ("GET", "/api/v1/sources/{source_id}/members"): ["401", "403", "404"],
        ("POST", "/api/v1/sources/{source_id}/members"): ["401", "403", "404", "409", "422"],
        ("PUT", "/api/v1/sources/{source_id}/members/{name}"): ["401", "403", "404", "409"],
        ("DELETE", "/api/v1/sources/{source_id}/members/{name}"): ["401", "403", "404", "409"],
        ("GET", "/api/v1/sources/{source_id}/members/{name}/keys"): ["401", "403", "404"],
        ("POST", "/api/v1/sources/{source_id}/members/{name}/keys"): ["401", "403", "404"],
        ("DELETE", "/api/v1/sources/{source_id}/members/{name}/keys/{key_id}"): [
            "401",
            "403",
            "404",
        ],
        ("GET", "/api/v1/me"): ["401"],
        ("PATCH", "/api/v1/me"): ["401", "422"],
        ("GET", "/api/v1/me/keys"): ["401"],
        ("POST", "/api/v1/me/keys"): ["401"],
        ("DELETE", "/api/v1/me/keys/{key_id}"): ["401", "404"],
        ("GET", "/api/v1/sources/{source_id}/audit"): ["401", "403", "404", "422"],
        ("GET", "/api/v1/sources/{source_id}/exports/stats"): ["401", "403", "404", "422"],
        ("PUT", "/api/v1/sources/{source_id}/webhook"): ["401", "403", "404", "422"],
        ("GET", "/api/v1/sources/{source_id}/webhook"): ["401", "403", "404"],
        ("DELETE", "/api/v1/sources/{source_id}/webhook"): ["401", "403", "404"],
        ("POST", "/api/v1/sources/{source_id}/export-schedules"): ["401", "403", "404", "422"],
        ("GET", "/api/v1/sources/{source_id}/export-schedules"): ["401", "404"],
        ("GET", "/api/v1/export-schedules/{schedule_id}"): ["401", "404"],
        ("PATCH", "/api/v1/export-schedules/{schedule_id}"): ["401", "403", "404", "422"],
        ("DELETE", "/api/v1/export-schedules/{schedule_id}"): ["401", "403", "404"],
    }
    assert set(operations) == set(expected)
    for key, errors in expected.items():
        operation = operations[key]
        assert operation["summary"], key
        assert set(errors) <= set(operation["responses"]), key
        secured = operation.get("security") == [{"HTTPBearer": []}]
        assert secured == (key != ("GET", "/api/v1/health")), key
    created = operations[("POST", "/api/v1/sources/{source_id}/exports")]["responses"]["202"]
    assert created["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewExportOut"
    }
    assert "Location" in created["headers"]
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
