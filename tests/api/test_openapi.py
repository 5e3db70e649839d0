"""The OpenAPI document is complete, and /api/docs works offline.

Walks Flask's URL map and the served spec, so a route added later (by any
module) is held to the same rules: it is documented, says what it returns
(with an example), which errors it answers (in the error shape) and what a
caller sends (with an example).
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections import defaultdict
from html.parser import HTMLParser

import pytest
from jsonschema import Draft202012Validator

# Routes that serve the document itself, not API operations.
DOC_ENDPOINTS = {"openapi_json", "api_docs"}
DOC_PREFIXES = ("openapi.", "swagger.")
# Left out of the document on purpose: they exist only to refuse an absolute
# path (/api/config/file//etc/passwd) with a 400; /api/config/file/{name}
# documents what a caller may send.
UNDOCUMENTED = {"api_config.absolute_read", "api_config.absolute_save",
                "api_config.absolute_rollback"}
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
def spec(client, viewer):
    resp = client.get("/api/openapi.json", headers=viewer)
    assert resp.status_code == 200
    return resp.get_json()


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([^>]+)>", r"{\1}", rule)


def _api_rules(app):
    for rule in app.url_map.iter_rules():
        if not (rule.rule == "/api" or rule.rule.startswith("/api/")):
            continue
        if (rule.endpoint in DOC_ENDPOINTS | UNDOCUMENTED
                or rule.endpoint.startswith(DOC_PREFIXES)):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method.lower()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", op


def _resolve(spec, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _examples(spec, media: dict) -> list:
    """Examples given on the media type or on the (resolved) schema."""
    found = []
    if "example" in media:
        found.append(media["example"])
    found += [e.get("value") for e in (media.get("examples") or {}).values()]
    schema = _resolve(spec, media.get("schema") or {})
    if "example" in schema:
        found.append(schema["example"])
    found += list(schema.get("examples") or [])
    return found


def _validator(spec, schema: dict) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": spec["components"]})


def test_every_api_route_is_in_the_spec(app, spec):
    missing = []
    for rule, method in _api_rules(app):
        path = _openapi_path(rule.rule)
        if method not in spec["paths"].get(path, {}):
            missing.append(f"{method.upper()} {path} ({rule.endpoint})")
    assert missing == [], "\n".join(missing)
    assert sum(1 for _ in _operations(spec)) >= 90


def test_every_operation_is_described_and_says_what_it_returns(spec):
    problems = []
    for label, op in _operations(spec):
        if not (op.get("summary") or "").strip():
            problems.append(f"{label}: no summary")
        success = {code: resp for code, resp in op["responses"].items()
                   if code.startswith("2")}
        if not any(resp.get("content") for resp in success.values()):
            problems.append(f"{label}: no 2xx response with a body schema")
        for code, resp in success.items():
            for media_type, media in (resp.get("content") or {}).items():
                if "schema" not in media:
                    problems.append(f"{label}: {code} {media_type} has no schema")
    assert problems == [], "\n".join(problems)


def test_every_operation_documents_its_errors_in_the_error_shape(spec):
    problems = []
    for label, op in _operations(spec):
        codes = set(op["responses"])
        takes_input = bool(op.get("parameters") or op.get("requestBody"))
        needed = set()
        if op.get("security") != []:  # public routes say security: []
            needed |= {"401", "403"} if op.get("security") else set()
        if takes_input:
            needed.add("400")
        if needed - codes:
            problems.append(f"{label}: undocumented {sorted(needed - codes)}")
        for code, resp in op["responses"].items():
            if code[0] not in "45":
                continue
            schema = (resp.get("content") or {}).get("application/json", {}).get("schema")
            if schema != {"$ref": "#/components/schemas/ErrorBody"}:
                problems.append(f"{label}: {code} is not an ErrorBody")
    assert problems == [], "\n".join(problems)


def test_protected_operations_declare_their_security(app, spec):
    """Every route but the public ones says how to authenticate."""
    from dashapp.security.roles import PUBLIC, access_of
    by_path = {}
    for rule, method in _api_rules(app):
        by_path[f"{method.upper()} {_openapi_path(rule.rule)}"] = access_of(
            app.view_functions[rule.endpoint])
    problems = [label for label, op in _operations(spec)
                if by_path.get(label) not in (PUBLIC, None) and not op.get("security")]
    assert problems == [], "\n".join(problems)


def test_request_bodies_and_responses_have_valid_examples(spec):
    problems = []
    for label, op in _operations(spec):
        bodies = (op.get("requestBody") or {}).get("content") or {}
        json_bodies = {k: v for k, v in bodies.items() if "json" in k}
        success = [(code, media) for code, resp in op["responses"].items()
                   if code.startswith("2")
                   for kind, media in (resp.get("content") or {}).items() if "json" in kind]
        for where, media in ([("request body", m) for m in json_bodies.values()]
                             + [(f"{code} response", m) for code, m in success]):
            examples = _examples(spec, media)
            if not examples:
                problems.append(f"{label}: {where} has no example")
                continue
            validator = _validator(spec, media.get("schema") or {})
            for example in examples:
                for err in validator.iter_errors(example):
                    path = "/".join(str(p) for p in err.absolute_path)
                    problems.append(f"{label}: {where} example /{path}: {err.message[:120]}")
                    break
    assert problems == [], "\n".join(problems)


def test_component_names_are_not_shared_by_two_models(spec):
    """flask-openapi3 names a schema after its model class: two API models
    with one name would silently document one route with the other's shape."""
    import dashapp.api as api
    from pydantic import BaseModel
    owners = defaultdict(set)
    for info in pkgutil.iter_modules(api.__path__):
        module = importlib.import_module(f"dashapp.api.{info.name}")
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, BaseModel)
                    and obj.__module__ == module.__name__):
                owners[obj.__name__].add(module.__name__)
    shared = {name: sorted(mods) for name, mods in owners.items()
              if len(mods) > 1 and name in spec["components"]["schemas"]}
    assert shared == {}


def test_bad_input_is_a_400_naming_the_field(client, admin):
    resp = client.get("/api/jobs/runs", query_string={"per_page": "many"}, headers=admin)
    assert resp.status_code == 400
    body = resp.get_json()["error"]
    assert body["code"] == "invalid_request"
    assert body["fields"][0]["field"] == "per_page"
    assert "per_page" in body["message"]
    # An id beyond what the store can hold is a 400 too, not a driver error.
    resp = client.get(f"/api/jobs/{2**64}", headers=admin)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["fields"][0]["field"] == "run_id"


def test_an_unknown_api_url_is_404_for_every_method(client, admin):
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        resp = client.open("/api/jobs/not-a-number/retry", method=method, headers=admin)
        assert resp.status_code == 404, method
        assert resp.get_json()["error"]["code"] == "not_found"
    # A known URL with the wrong method stays a 405 that says what is allowed.
    resp = client.delete("/api/jobs/runs", headers=admin)
    assert resp.status_code == 405
    assert "GET" in resp.headers["Allow"]
    assert resp.get_json()["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------- /api/docs

class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


def test_api_docs_page_is_served_by_the_console_itself(client, viewer):
    from urllib.parse import urljoin
    resp = client.get("/api/docs", headers=viewer)
    assert resp.status_code == 302
    page_url = resp.location
    page = client.get(page_url, headers=viewer)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger-ui" in html
    parser = _Links()
    parser.feed(html)
    assert len(parser.urls) >= 3  # the stylesheet and two scripts at least
    external = [u for u in parser.urls if re.match(r"^(?:[a-z]+:)?//", u)]
    assert external == []
    assert not re.search(r"https?://", html.split("<script>", 1)[-1]), \
        "the inline boot script must not fetch from elsewhere"
    for url in parser.urls:
        asset = client.get(urljoin(f"http://localhost{page_url}", url), headers=viewer)
        assert asset.status_code == 200, url
        assert len(asset.data) > 100, url
    # The spec the page loads (relative "openapi.json") is served too.
    spec = client.get(urljoin(f"http://localhost{page_url}", "openapi.json"), headers=viewer)
    assert spec.status_code == 200 and "paths" in spec.get_json()


def test_api_docs_need_a_sign_in(client):
    assert client.get("/api/openapi.json").status_code == 401
    assert client.get("/api/docs/swagger").status_code in (302, 401)
