"""/api/config: configuration files in OPS_CONFIG_DIR: list, read, validate,
edit, history, rollback.

Thin: validate input, call dashapp.services.config_files (the same functions
the Configuration page calls), jsonify. A file is named by its path relative
to the config folder (`shop.yaml`, `sub/app.toml`); any name that leaves the
folder, goes through a symlink, is not a regular file or has another
extension than .yaml .yml .json .toml .ini .cfg .env is refused with 400.

Reads are for viewers, with secret-looking values masked (`masked: true`);
admins get the real values. Writes (PUT, rollback) are admin-only, need the
version (sha256) the edit was based on (`If-Match: "<version>"` or a
`version` field), and answer 409 with `current_version` when the file has
changed since.
"""
from __future__ import annotations

import logging

from flask import current_app, request
from flask_openapi3 import APIBlueprint, Tag
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from dashapp.api.common import (INPUT_ERRORS, SECURITY, ErrorBody, current_actor, error,
                                example, guarded, store_unavailable, tidy_docs)
from dashapp.security.auth import current_role
from dashapp.security.roles import requires, role_allows
from dashapp.services import config_files as svc

logger = logging.getLogger(__name__)

bp = APIBlueprint("api_config", __name__, url_prefix="/api/config",
                  abp_tags=[Tag(name="config_files", description="Configuration files: read, validate, edit, history, rollback")])

ERRORS = {**INPUT_ERRORS, 404: ErrorBody, 503: ErrorBody}
WRITE_ERRORS = {**ERRORS, 409: ErrorBody, 422: ErrorBody, 428: ErrorBody}
MAX_CONTENT = 2 * svc.MAX_BYTES
VERSION = Field(None, pattern=r"^[0-9a-f]{64}$",
                description="The version (sha256) the edit is based on; or send If-Match")


# ------------------------------------------------------------------ models

class FilePath(BaseModel):
    name: str = Field(min_length=1, max_length=2048,
                      description="The file's path relative to the config folder")


class ValidateBody(BaseModel):
    model_config = example({'name': 'features.json', 'content': '{"new_checkout": true}\n'})
    name: str = Field(min_length=1, max_length=2048,
                      description="The file the content is for (its format and schema)")
    content: str = Field(max_length=MAX_CONTENT, description="The text to check")


class SaveBody(BaseModel):
    model_config = example({'content': '{"new_checkout": true}\n',
                            'reason': 'Turn the new checkout on',
                            'version': '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'})
    content: str = Field(max_length=MAX_CONTENT, description="The new text of the file")
    reason: str = Field("", max_length=svc.MAX_REASON, description="Why (required)")
    version: str | None = VERSION


class RollbackBody(BaseModel):
    model_config = example({'version': '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
                            'reason': 'Back to the reviewed version',
                            'expected_version': None})
    version: str = Field(pattern=r"^[0-9a-f]{64}$",
                         description="The earlier version (sha256) to restore, from history")
    reason: str = Field("", max_length=svc.MAX_REASON,
                        description="Why; default 'Roll back to version ...'")
    expected_version: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$",
        description="Refuse (409) unless the file is at this version now; or If-Match")


class HistoryQuery(BaseModel):
    limit: int = Field(50, ge=1, le=500, description="Newest changes to return (1-500)")


class FileRow(BaseModel):
    name: str
    format: str = Field(description="yaml, json, toml, ini or env")
    size: int
    modified: str
    version: str | None
    schema_file: str | None = Field(None, alias="schema",
                                    description="The JSON Schema file that applies, if any")
    last_change: dict | None = Field(description="time, actor, kind of the newest change")


class FilesResponse(BaseModel):
    model_config = example({'exists': True,
                            'files': [{'format': 'env',
                                       'last_change': None,
                                       'modified': '2026-11-26T22:33:46+00:00',
                                       'name': '.env',
                                       'schema': None,
                                       'size': 178,
                                       'version': 'f24743175920091abc6aeefde888f16366a804f98b5642af79bf08572674ee62'}],
                            'folder': '/tmp/h4capfhbmoolm/instance/config',
                            'truncated': False})
    folder: str
    exists: bool
    files: list[FileRow]
    truncated: bool


class FileResponse(BaseModel):
    model_config = example({'content': '{\n'
                                       '  "new_checkout": {"enabled": true, "rollout_percent": 25},\n'
                                       '  "recommendations": {"enabled": true, "model": "rf-v3"},\n'
                                       '  "dark_launch_search": {"enabled": f...',
                            'editable': True,
                            'format': 'json',
                            'masked': False,
                            'masked_values': 0,
                            'modified': '2026-11-26T22:33:46+00:00',
                            'name': 'features.json',
                            'schema': None,
                            'size': 223,
                            'version': 'ce12044493e6139c0a8229f3fd88563fea7ecdd2fc9e25c8b5acdfce733fa2ca'})
    name: str
    format: str
    size: int
    version: str = Field(description="sha256 of the bytes; also the ETag header")
    modified: str
    content: str
    masked: bool = Field(description="true: secret values are shown as ********")
    masked_values: int
    schema_file: str | None = Field(None, alias="schema")
    editable: bool = Field(description="true for admins")


class ValidationIssue(BaseModel):
    line: int | None
    column: int | None
    message: str
    source: str = Field(description="syntax, schema or encoding")
    path: str | None = Field(description="Schema errors: where in the data")


class ValidateResponse(BaseModel):
    model_config = example({'errors': [], 'format': 'json', 'schema': None, 'valid': True})
    valid: bool
    format: str
    schema_file: str | None = Field(None, alias="schema")
    errors: list[ValidationIssue]


class SaveResponse(BaseModel):
    model_config = example({'change_id': 2,
                            'changed': True,
                            'name': 'features.json',
                            'size': 224,
                            'version': 'e9bf00e3d5ad64441fda639d8e690f440a0ae2afea6468de501c87bceb807566',
                            'version_before': 'ce12044493e6139c0a8229f3fd88563fea7ecdd2fc9e25c8b5acdfce733fa2ca'})
    name: str
    changed: bool = Field(description="false when the content was already the file's")
    version: str
    version_before: str
    size: int
    change_id: int | None
    restored_from: int | None = None


class HistoryResponse(BaseModel):
    model_config = example({'changes': [{'actor': 'admin',
                                         'current': True,
                                         'diff': '--- features.json@ce12044493e6\n'
                                                 '+++ features.json@e9bf00e3d5ad\n'
                                                 '@@ -4,3 +4,4 @@\n'
                                                 '   "dark_launch_search": {"enabled": false, '
                                                 '"rollout_percent": 0},\n'
                                                 '   "gift_car...',
                                         'id': 2,
                                         'kind': 'edit',
                                         'reason': 'Raise the pool size for the sale',
                                         'size': 224,
                                         'time': '2026-11-26T22:34:47+00:00',
                                         'version_after': 'e9bf00e3d5ad64441fda639d8e690f440a0ae2afea6468de501c87bceb807566',
                                         'version_before': 'ce12044493e6139c0a8229f3fd88563fea7ecdd2fc9e25c8b5acdfce733fa2ca'}],
                            'name': 'features.json',
                            'total': 2,
                            'version': 'e9bf00e3d5ad64441fda639d8e690f440a0ae2afea6468de501c87bceb807566'})
    name: str
    version: str | None = Field(description="The version on disk now (null: file gone)")
    total: int
    changes: list[dict] = Field(description="Newest first: id, time, actor, kind "
                                            "(baseline|edit|rollback), reason, "
                                            "version_before, version_after, size, diff "
                                            "(unified; secrets masked unless admin), current")


# ----------------------------------------------------------------- helpers

def _ops():
    return current_app.extensions["ops"]


def _folder():
    return _ops().settings.config_folder


def _is_admin() -> bool:
    return role_allows(current_role(), "admin")


def _if_match() -> str | None:
    """The version in If-Match ("<sha256>", W/ and quotes stripped)."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    value = header.split(",")[0].strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"') or None


def _with_etag(body: dict, version: str, status: int = 200):
    from flask import jsonify
    resp = jsonify(body)
    resp.status_code = status
    resp.headers["ETag"] = f'"{version}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _failure(exc: Exception):
    if isinstance(exc, svc.PathRefused):
        return error(400, "invalid_name", f"name: {exc}",
                     fields=[{"field": "name", "message": str(exc)}])
    if isinstance(exc, svc.FileMissing):
        return error(404, "not_found", str(exc))
    if isinstance(exc, svc.VersionNotFound):
        return error(404, "version_not_found", str(exc))
    if isinstance(exc, svc.NotText):
        return error(400, "not_text", str(exc))
    if isinstance(exc, svc.VersionRequired):
        return error(428, "version_required", str(exc))
    if isinstance(exc, svc.VersionConflict):
        return error(409, "version_conflict", str(exc), current_version=exc.current)
    if isinstance(exc, svc.InvalidContent):
        return error(422, "invalid_content", f"content: {exc}", errors=exc.errors)
    if isinstance(exc, svc.MaskedSecret):
        return error(400, "masked_secret", f"content: {exc}")
    if isinstance(exc, svc.ReasonRequired):
        return error(400, "reason_required", f"reason: {exc}",
                     fields=[{"field": "reason", "message": str(exc)}])
    if isinstance(exc, SQLAlchemyError):
        return store_unavailable(exc, "config API")
    if isinstance(exc, OSError):
        logger.warning("config API: the config folder cannot be used: %s", exc)
        return error(503, "config_folder_unavailable",
                     f"The config folder cannot be used right now: {exc.strerror or exc}")
    raise exc


# Service, store and file-system errors become the API's error shape.
_guarded = guarded((svc.ConfigError, SQLAlchemyError, OSError), _failure)


# ------------------------------------------------------------------ routes

@bp.get("/files", responses={200: FilesResponse, **INPUT_ERRORS, 503: ErrorBody},
        security=SECURITY)
@requires("viewer")
@_guarded
def files():
    """Every editable file in the config folder (subfolders included, symlinks
    skipped): size, modification time, version, the schema that applies and
    the newest recorded change."""
    return svc.list_files(_ops().store, _folder())


@bp.get("/file/<path:name>", merge_slashes=False, responses={200: FileResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def read(path: FilePath):
    """A file's text and version (also as a strong ETag). Values of keys that
    name a secret (`DB_PASSWORD`, `client_secret`, `api_key`, ...; not
    `cache_key`) and secrets inside values (URL passwords, flow maps, inline
    tables, connection strings, private keys) are shown as ******** unless
    the caller is an admin (`masked: true`)."""
    admin = _is_admin()
    data = svc.read_file(_folder(), path.name, reveal=admin)
    return _with_etag({**data, "editable": admin}, data["version"])


@bp.post("/validate", responses={200: ValidateResponse, **ERRORS}, security=SECURITY)
@requires("viewer")
@_guarded
def validate(body: ValidateBody):
    """Check content for a file without saving: the syntax of its format (with
    the line and column of the error) and, when `<stem>.schema.json` sits
    beside the file, that JSON Schema. Always 200; `valid` says the result."""
    return svc.validate(_folder(), body.name, body.content)


@bp.put("/file/<path:name>", merge_slashes=False, responses={200: SaveResponse, **WRITE_ERRORS},
        security=SECURITY)
@requires("admin")
@_guarded
def save(path: FilePath, body: SaveBody):
    """Replace a file's content. Admin; audited. Validated first (422 with
    the errors); written atomically (temporary file, fsync, rename; the
    file's mode kept). Needs the version the edit is based on (If-Match or
    `version`; 428 without): 409 `version_conflict` with `current_version`
    when the file changed since. A `reason` is required. Content that still
    holds ******** where a secret was is refused (400 `masked_secret`)."""
    result = svc.save_file(_ops().store, _folder(), path.name, body.content,
                           expected_version=_if_match() or body.version, actor=current_actor(),
                           reason=body.reason)
    return _with_etag(result, result["version"])


@bp.get("/file/<path:name>/history", merge_slashes=False,
        responses={200: HistoryResponse, **ERRORS},
        security=SECURITY)
@requires("viewer")
@_guarded
def history(path: FilePath, query: HistoryQuery):
    """The file's recorded versions, newest first: who, when, why, and the
    unified diff from the version before (secret values masked unless admin).
    The first change also recorded the file as found (kind `baseline`)."""
    return svc.history(_ops().store, _folder(), path.name, reveal=_is_admin(),
                       limit=query.limit)


@bp.post("/file/<path:name>/rollback", merge_slashes=False,
         responses={200: SaveResponse, **WRITE_ERRORS},
         security=SECURITY)
@requires("admin")
@_guarded
def rollback(path: FilePath, body: RollbackBody):
    """Write back exactly the bytes of an earlier version (sha256 equal),
    recorded as a new change of kind `rollback`. Admin; audited. With
    If-Match or `expected_version`, 409 unless the file is at that version."""
    result = svc.rollback(_ops().store, _folder(), path.name, body.version, actor=current_actor(),
                          reason=body.reason,
                          expected_version=_if_match() or body.expected_version)
    return _with_etag(result, result["version"])


# An absolute name (/api/config/file//etc/app.yaml, or %2F-encoded) gives a
# path that the <path:> rules above cannot match (it starts with "/"). These
# rules catch it so it is refused with 400 like every other escape, instead
# of falling through to "no such route". They only ever refuse.

def _absolute():
    return _failure(svc.PathRefused("Absolute paths are refused: name a file inside the "
                                    "config folder."))


@bp.get("/file//<path:name>", merge_slashes=False, doc_ui=False)
@requires("viewer")
def absolute_read(path: FilePath):
    return _absolute()


@bp.put("/file//<path:name>", merge_slashes=False, doc_ui=False)
@requires("viewer")
def absolute_save(path: FilePath):
    return _absolute()


@bp.post("/file//<path:name>", merge_slashes=False, doc_ui=False)
@requires("viewer")
def absolute_rollback(path: FilePath):
    return _absolute()


tidy_docs(bp)
