"""kmock's KubernetesEmulator, completed into an API server the operator cannot tell apart.

kmock 0.8 stores bodies verbatim and leaves out what kopf and the official client rely
on (docs/facts.md lists it).  This subclass serves every request on a declared resource from
its own store, the way kube-apiserver does:

- server-set metadata: uid, resourceVersion (one counter), creationTimestamp,
  generation (bumped on spec changes only), namespace, ``generateName``;
- list/watch with labelSelector and fieldSelector, lists with a real resourceVersion,
  watches that resume from a resourceVersion (an event log, so nothing falls between
  the list and the watch), ``timeoutSeconds``, 410 Gone past the log's horizon;
- the status subresource kept apart from the main resource;
- merge, strategic-merge (as merge) and JSON patches (a failed ``test`` is 422),
  PUT with optimistic concurrency (409 on a stale resourceVersion);
- finalizers and deletionTimestamp, and the garbage collector's cascade over
  ownerReferences (background deletion).

Discovery (``/api``, ``/apis``, …) stays kmock's.  Everything runs in the server's loop.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock

Key = tuple[str, str | None, str]  # (group/version/plural, namespace, name)


@attrs.frozen
class Served:
    """One request served from the store, in RBAC's terms (verb on group/resource[/sub])."""

    verb: str
    group: str
    resource: str  # plural, or plural/subresource
    namespace: str | None
    name: str | None
    agent: str

    @property
    def rkey(self) -> str:
        return self.resource


LOG_HORIZON = 100_000


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> aiohttp.web.Response:
    body = {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details or {},
    }
    return aiohttp.web.json_response(body, status=code)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A CRD's structural schema as JSON Schema (draft 4): nullable, int-or-string, list types."""
    out = {
        k: v
        for k, v in node.items()
        if not k.startswith("x-kubernetes-")
        and k not in ("properties", "items", "additionalProperties", "nullable", "type")
    }
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    elif "type" in node:
        out["type"] = [node["type"], "null"] if node.get("nullable") else node["type"]
    if "properties" in node:
        out["properties"] = {k: _json_schema(v) for k, v in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = _json_schema(node["items"])
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    return out


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def schema_errors(schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """Field errors in the API server's words: ``spec.steps: Invalid value: 0: ... should be >= 1``."""
    import jsonschema

    causes = []
    validator = jsonschema.Draft4Validator(_json_schema(schema))
    for err in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        field = _path(err.absolute_path) or "<root>"
        causes.append({"field": field, "message": f"Invalid value: {json.dumps(err.instance)[:80]}: {err.message}"})

    def walk(node: dict[str, Any], value: Any, before: Any, path: list[Any]) -> None:
        if node.get("x-kubernetes-list-type") == "map" and isinstance(value, list):
            keys = node.get("x-kubernetes-list-map-keys") or []
            seen: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                key = tuple(item.get(k) for k in keys) if isinstance(item, dict) else (item,)
                if key in seen:
                    causes.append(
                        {
                            "field": _path([*path, i]),
                            "message": f"Duplicate value: {json.dumps(dict(zip(keys, key, strict=False)))}",
                        }
                    )
                seen.add(key)
        for rule in node.get("x-kubernetes-validations") or []:
            if rule["rule"] == "self == oldSelf" and before is not None and value != before:
                causes.append({"field": _path(path), "message": f'Invalid value: "object": {rule["message"]}'})
        if isinstance(value, dict):
            for k, child in (node.get("properties") or {}).items():
                if k in value:
                    walk(child, value[k], before.get(k) if isinstance(before, dict) else None, [*path, k])

    walk(schema, obj, old, [])
    return causes


def schema_pruning(schema: dict[str, Any], obj: Any, path: list[Any] | None = None) -> list[str]:
    """Fields the structural schema does not declare: dropped, or with Strict validation, rejected."""
    path = path or []
    unknown: list[str] = []
    if isinstance(obj, dict) and "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        for k in list(obj):
            if k not in schema["properties"] and not (not path and k in ("apiVersion", "kind", "metadata")):
                unknown.append(_path([*path, k]))
                del obj[k]
            elif k in schema["properties"]:
                unknown += schema_pruning(schema["properties"][k], obj[k], [*path, k])
    elif isinstance(obj, list) and "items" in schema:
        for i, item in enumerate(obj):
            unknown += schema_pruning(schema["items"], item, [*path, i])
    return unknown


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def label_matcher(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Equality- and set-based label selectors, as ``kubectl -l`` takes them."""
    if not selector:
        return lambda labels: True
    tests: list[Callable[[dict[str, str]], bool]] = []
    for part in _split_selector(selector):
        if m := re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\((.*)\)", part):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                tests.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif m := re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", part):
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                tests.append(lambda lb, k=key, v=value: lb.get(k) == v)
        elif m := re.fullmatch(r"!([\w./-]+)", part):
            absent = m.group(1)
            tests.append(lambda lb, k=absent: k not in lb)
        elif re.fullmatch(r"[\w./-]+", part):
            tests.append(lambda lb, k=part: k in lb)
        else:
            raise ValueError(f"unable to parse requirement: {part!r}")
    return lambda labels: all(t(labels) for t in tests)


def field_matcher(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    if not selector:
        return lambda obj: True
    tests = []
    for part in _split_selector(selector):
        m = re.fullmatch(r"([\w.]+)\s*(==|=|!=)\s*(.*)", part)
        if not m:
            raise ValueError(f"unable to parse field requirement: {part!r}")
        path, op, value = m.groups()

        def get(obj: dict[str, Any], path: str = path) -> Any:
            node: Any = obj
            for seg in path.split("."):
                node = node.get(seg) if isinstance(node, dict) else None
            return node

        if op == "!=":
            tests.append(lambda o, g=get, v=value: str(g(o) or "") != v)
        else:
            tests.append(lambda o, g=get, v=value: str(g(o) or "") == v)
    return lambda obj: all(t(obj) for t in tests)


@attrs.define(kw_only=True)
class ApiServer(kmock.KubernetesEmulator):
    store: dict[Key, dict[str, Any]] = attrs.field(factory=dict, init=False)
    schemas: dict[str, tuple[str, dict[str, Any]]] = attrs.field(factory=dict, init=False)
    events: deque[tuple[int, str, dict[str, Any]]] = attrs.field(factory=lambda: deque(maxlen=LOG_HORIZON), init=False)
    revision: int = attrs.field(default=0, init=False)
    changed: asyncio.Condition | None = attrs.field(default=None, init=False)
    #: every request served from the store, for assertions (who asked for what).
    served: list[Served] = attrs.field(factory=list, init=False)
    watchers: int = attrs.field(default=0, init=False)
    closing: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_bundled()

    # ---- declared resources -------------------------------------------------------------
    def declare(
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        *,
        namespaced: bool = True,
        schema: dict[str, Any] | None = None,
        shortnames: tuple[str, ...] = (),
        categories: tuple[str, ...] = (),
    ) -> None:
        """A custom resource; with its CRD's ``openAPIV3Schema``, creates and updates are
        validated as kube-apiserver validates them (schema, list types, ``self == oldSelf``)."""
        rkey = f"{group}/{version}/{plural}"
        self.resources[rkey] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            shortnames=set(shortnames),
            categories=set(categories),
            namespaced=namespaced,
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
            subresources={"status"},
        )
        if schema is not None:
            self.schemas[rkey] = (kind, schema)

    def _invalid(
        self, rkey: str, obj: dict[str, Any], old: dict[str, Any] | None, strict: bool
    ) -> aiohttp.web.Response | None:
        """422 (or 400 for unknown fields under fieldValidation=Strict), as the API server answers."""
        if rkey not in self.schemas:
            return None
        kind, schema = self.schemas[rkey]
        group = rkey.split("/")[0]
        name = obj.get("metadata", {}).get("name", "")
        unknown = schema_pruning(schema, obj)
        if unknown and strict:
            fields = ", ".join(f'unknown field "{u}"' for u in unknown)
            return _status(
                400,
                "BadRequest",
                f'{kind} in version "{rkey.split("/")[1]}" cannot be handled as a {kind}: strict decoding error: {fields}',
            )
        causes = schema_errors(schema, obj, old)
        if causes:
            message = f'{kind}.{group} "{name}" is invalid: ' + ", ".join(
                f"{c['field']}: {c['message']}" for c in causes
            )
            return _status(422, "Invalid", message, {"name": name, "group": group, "kind": kind, "causes": causes})
        return None

    def _info(self, res: Any) -> Any | None:
        for known in self.resources:
            if known == res:
                return self.resources[known]
        return None

    @staticmethod
    def rkey(res: Any) -> str:
        return f"{res.group}/{res.version}/{res.plural}"

    def _cond(self) -> asyncio.Condition:
        if self.changed is None:
            self.changed = asyncio.Condition()
        return self.changed

    # ---- the store, usable in-loop by controllers (the Job executor) ----------------------
    async def emit(self, rkey: str, kind: str, obj: dict[str, Any]) -> None:
        # Logged before the first await: the bump and the log entry are one step of the loop,
        # so the log is ordered by resourceVersion and no watcher can skip an entry.
        self.events.append(
            (int(obj["metadata"]["resourceVersion"]), rkey, {"type": kind, "object": copy.deepcopy(obj)})
        )
        async with self._cond():
            self._cond().notify_all()

    def _bump(self, obj: dict[str, Any]) -> None:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)

    def objects_of(self, rkey: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (r, ns, _), o in self.store.items() if r == rkey and (namespace is None or ns == namespace)]

    async def put_object(self, rkey: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object as a controller would (used by tests to add Secrets etc.)."""
        meta = obj.setdefault("metadata", {})
        key = (rkey, meta.get("namespace"), meta["name"])
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("generation", 1)
        self._bump(obj)
        self.store[key] = obj
        await self.emit(rkey, "ADDED", obj)
        return obj

    async def update_status(self, rkey: str, namespace: str | None, name: str, status: dict[str, Any]) -> None:
        """A controller's status write (the Job controller's, here): merge-patch into .status."""
        obj = self.store.get((rkey, namespace, name))
        if obj is None:
            return
        new = merge_patch(obj.get("status") or {}, status)
        if new == obj.get("status"):
            return
        obj["status"] = new
        self._bump(obj)
        await self.emit(rkey, "MODIFIED", obj)

    async def remove(self, key: Key) -> dict[str, Any] | None:
        """Delete now, or mark for deletion while finalizers remain; cascade to dependents."""
        obj = self.store.get(key)
        if obj is None:
            return None
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = _now()
                self._bump(obj)
                await self.emit(key[0], "MODIFIED", obj)
            return obj
        del self.store[key]
        self._bump(obj)
        await self.emit(key[0], "DELETED", obj)
        await self._collect_dependents(meta["uid"])
        return obj

    async def _collect_dependents(self, uid: str) -> None:
        dependents = [
            k
            for k, o in self.store.items()
            if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])
        ]
        for k in dependents:
            await self.remove(k)

    async def close_watches(self) -> None:
        """End every open watch, as an API server does when it shuts down."""
        self.closing = True
        async with self._cond():
            self._cond().notify_all()

    # ---- HTTP --------------------------------------------------------------------------
    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        path = request.url.path.rstrip("/")
        if path.startswith("/openapi/v3"):
            return self._openapi(path.removeprefix("/openapi/v3").strip("/"))
        if namespace := re.fullmatch(r"/api/v1/namespaces/([^/]+)", path):
            method = request.method.value if request.method else "GET"
            return await self._namespaces(method, namespace.group(1), request.data, request.headers)
        if discovered := re.fullmatch(r"/api/(v1)|/apis/([^/]+)/([^/]+)", path):
            core, group, version = discovered.groups()
            return self._resource_list(group or "", core or version)
        res = request.resource
        if res is None or not res.plural or self._info(res) is None:
            return await super()._handle(request)
        info = self._info(res)
        rkey = self.rkey(res)
        method = request.method.value if request.method else "GET"
        verb = {
            kmock.action.WATCH: "watch",
            kmock.action.LIST: "list",
            kmock.action.FETCH: "get",
            kmock.action.CREATE: "create",
            kmock.action.UPDATE: "patch",
            kmock.action.DELETE: "delete",
        }.get(request.action, "update" if method == "PUT" else method.lower())
        self.served.append(
            Served(
                verb,
                res.group or "",
                res.plural + (f"/{request.subresource}" if request.subresource else ""),
                request.namespace,
                request.name,
                request.headers.get("User-Agent", ""),
            )
        )
        try:
            if request.action == kmock.action.WATCH:
                return await self._watch(request, rkey)
            if request.action == kmock.action.LIST:
                return self._list(request, rkey, info)
            if request.action == kmock.action.FETCH:
                return self._fetch(request, rkey)
            if request.action == kmock.action.CREATE:
                return await self._create(request, rkey, info)
            if request.action == kmock.action.UPDATE or (method == "PUT" and request.name):
                return await self._update(request, rkey, info, replace=method == "PUT")
            if request.action == kmock.action.DELETE:
                obj = await self.remove((rkey, request.namespace, request.name or ""))
                if obj is None:
                    return _status(404, "NotFound", f'{res.plural} "{request.name}" not found')
                return aiohttp.web.json_response(obj)
        except ValueError as exc:
            return _status(400, "BadRequest", str(exc))
        return _status(405, "MethodNotAllowed", f"{method} is not supported on {rkey}")

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock's URL parser takes /api/v1/namespaces for a namespace prefix and fails on it: served here.
        if re.fullmatch(r"/api/v1/namespaces/?", raw_request.path) and raw_request.query.get("watch") != "true":
            raw = await raw_request.read()
            data = json.loads(raw) if raw else None
            return await self._namespaces(raw_request.method, None, data, dict(raw_request.headers))
        return await super().__call__(raw_request)

    async def _namespaces(self, method: str, name: str | None, data: Any, headers: Any) -> aiohttp.web.Response:
        """Namespaces: list, get, create (JSON, as ``kubectl apply`` sends it), delete."""
        rkey = "/v1/namespaces"
        verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete"}.get(method, method.lower())
        self.served.append(Served(verb, "", "namespaces", None, name, headers.get("User-Agent", "")))
        if method == "GET" and name is None:
            items = sorted(self.objects_of(rkey), key=lambda o: o["metadata"]["name"])
            meta = {"resourceVersion": str(self.revision)}
            return aiohttp.web.json_response({"apiVersion": "v1", "kind": "NamespaceList", "metadata": meta,
                                              "items": items})  # fmt: skip
        if method == "GET":
            obj = self.store.get((rkey, None, name or ""))
            return aiohttp.web.json_response(obj) if obj else _status(404, "NotFound", f'namespaces "{name}" not found')
        if method == "POST":
            body = copy.deepcopy(data)
            if not isinstance(body, dict) or not (body.get("metadata") or {}).get("name"):
                return _status(400, "BadRequest", "a Namespace as a JSON object with metadata.name")
            if (rkey, None, body["metadata"]["name"]) in self.store:
                return _status(409, "AlreadyExists", f'namespaces "{body["metadata"]["name"]}" already exists')
            body["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            body["status"] = {"phase": "Active"}
            return aiohttp.web.json_response(await self.put_object(rkey, body), status=201)
        if method == "DELETE" and name:
            obj = await self.remove((rkey, None, name))
            return aiohttp.web.json_response(obj) if obj else _status(404, "NotFound", f'namespaces "{name}" not found')
        return _status(405, "MethodNotAllowed", f"{method} is not supported on namespaces")

    def _resource_list(self, group: str, version: str) -> aiohttp.web.Response:
        """Discovery of one group-version as kube-apiserver answers it: ``groupVersion`` "v1" for the core
        group (kmock writes "/v1", which kubectl cannot map to a kind), and subresources without the
        parent's short names and categories (else ``kubectl get ns`` sees ambiguous short names)."""
        entries = []
        for res, info in self.resources.items():
            if (res.group or "") != group or res.version != version or not res.plural:
                continue
            base = {"kind": info.kind, "singularName": info.singular or res.plural, "namespaced": bool(info.namespaced)}
            entries.append({**base, "name": res.plural, "shortNames": sorted(info.shortnames),
                            "categories": sorted(info.categories), "verbs": sorted(info.verbs)})  # fmt: skip
            for sub in sorted(info.subresources):
                entries.append({**base, "name": f"{res.plural}/{sub}", "verbs": ["get", "patch", "update"]})
        if not entries:
            return _status(404, "NotFound", f"the server could not find the requested resource ({group}/{version})")
        return aiohttp.web.json_response(
            {
                "apiVersion": "v1",
                "kind": "APIResourceList",
                "groupVersion": f"{group}/{version}".lstrip("/"),
                "resources": entries,
            }
        )

    def _openapi(self, group_version: str) -> aiohttp.web.Response:
        """OpenAPI v3 as far as kubectl reads it: the index of group-versions, and per group-version one
        PATCH operation per kind that accepts ``fieldValidation`` — which tells kubectl the server
        validates fields itself (it does: ``_invalid``), so kubectl needs no client-side schemas."""
        gvs: dict[str, list[tuple[Any, Any]]] = {}
        for res, info in self.resources.items():
            if info.kind:
                prefix = f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"
                gvs.setdefault(prefix, []).append((res, info))
        if not group_version:
            return aiohttp.web.json_response(
                {"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={self.revision}"} for gv in gvs}}
            )
        if group_version not in gvs:
            return _status(404, "NotFound", f"no OpenAPI document for {group_version}")
        paths = {}
        for res, info in gvs[group_version]:
            scope = "namespaces/{namespace}/" if info.namespaced else ""
            gvk = {"group": res.group or "", "version": res.version, "kind": info.kind}
            paths[f"/{group_version}/{scope}{res.plural}/{{name}}"] = {
                "patch": {
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}},
                }
            }
        return aiohttp.web.json_response(
            {"openapi": "3.0.0", "info": {"title": "emulated", "version": "v"}, "paths": paths}
        )

    def _select(self, request: kmock.Request, rkey: str) -> list[dict[str, Any]]:
        labels = label_matcher(request.params.get("labelSelector"))
        fields = field_matcher(request.params.get("fieldSelector"))
        return [
            o
            for o in self.objects_of(rkey, request.namespace)
            if labels(o["metadata"].get("labels") or {}) and fields(o)
        ]

    def _list(self, request: kmock.Request, rkey: str, info: Any) -> aiohttp.web.Response:
        items = sorted(
            self._select(request, rkey), key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"])
        )
        kind = (info.kind or "") + "List"
        return aiohttp.web.json_response(
            {
                "apiVersion": rkey.rsplit("/", 1)[0].lstrip("/"),
                "kind": kind,
                "metadata": {"resourceVersion": str(self.revision)},
                "items": items,
            }
        )

    def _fetch(self, request: kmock.Request, rkey: str) -> aiohttp.web.Response:
        obj = self.store.get((rkey, request.namespace, request.name or ""))
        if obj is None:
            return _status(404, "NotFound", f'"{request.name}" not found', {"name": request.name})
        return aiohttp.web.json_response(obj)

    async def _create(self, request: kmock.Request, rkey: str, info: Any) -> aiohttp.web.Response:
        body = copy.deepcopy(request.data)
        if not isinstance(body, dict):
            raise ValueError("the request body must be a JSON object")
        meta = body.setdefault("metadata", {})
        if info.namespaced:
            if meta.get("namespace") not in (None, request.namespace):
                raise ValueError(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = request.namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                return _status(422, "Invalid", "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        key = (rkey, meta.get("namespace"), meta["name"])
        if key in self.store:
            return _status(409, "AlreadyExists", f'"{meta["name"]}" already exists', {"name": meta["name"]})
        if "status" in info.subresources:
            body.pop("status", None)
        invalid = self._invalid(rkey, body, None, request.params.get("fieldValidation") == "Strict")
        if invalid is not None:
            return invalid
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        meta.pop("resourceVersion", None)
        if request.params.get("dryRun"):
            return aiohttp.web.json_response(body, status=201)
        await self.put_object(rkey, body)
        return aiohttp.web.json_response(body, status=201)

    async def _update(self, request: kmock.Request, rkey: str, info: Any, *, replace: bool) -> aiohttp.web.Response:
        key = (rkey, request.namespace, request.name or "")
        old = self.store.get(key)
        if old is None:
            return _status(404, "NotFound", f'"{request.name}" not found', {"name": request.name})
        data = request.data
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if replace:
            new = copy.deepcopy(data)
        elif ctype == "application/json-patch+json":
            try:
                new = jsonpatch.apply_patch(old, data)
            except jsonpatch.JsonPatchTestFailed as exc:
                return _status(422, "Invalid", f"the server rejected our request due to an error in our request: {exc}")
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                return _status(422, "Invalid", str(exc))
        elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            new = merge_patch(old, data)
        else:
            return _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        wanted_rv = (new.get("metadata") or {}).get("resourceVersion")
        if wanted_rv not in (None, old["metadata"]["resourceVersion"]) and (
            replace or "resourceVersion" in json.dumps(data)
        ):
            return _status(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        new_meta = new.setdefault("metadata", {})
        for fixed in (
            "uid",
            "creationTimestamp",
            "name",
            "namespace",
            "generation",
            "resourceVersion",
            "deletionTimestamp",
        ):
            if fixed in old["metadata"]:
                new_meta[fixed] = old["metadata"][fixed]
            else:
                new_meta.pop(fixed, None)
        if "status" in info.subresources:
            if request.subresource == "status":
                new = {**copy.deepcopy(old), "status": new.get("status")}
                if new["status"] is None:
                    new.pop("status")
            else:
                new.pop("status", None)
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        if new == old:
            return aiohttp.web.json_response(old)  # a no-op write changes nothing, not even the version
        if request.subresource != "status":
            invalid = self._invalid(rkey, new, old, request.params.get("fieldValidation") == "Strict")
            if invalid is not None:
                return invalid
        if request.subresource != "status" and new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        self._bump(new)
        self.store[key] = new
        await self.emit(rkey, "MODIFIED", new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            await self.remove(key)
        return aiohttp.web.json_response(new)

    async def _watch(self, request: kmock.Request, rkey: str) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        labels = label_matcher(request.params.get("labelSelector"))
        fields = field_matcher(request.params.get("fieldSelector"))
        timeout = float(request.params.get("timeoutSeconds") or 0) or None

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            if request.namespace is not None and meta.get("namespace") != request.namespace:
                return False
            if request.name is not None and meta["name"] != request.name:
                return False
            return labels(meta.get("labels") or {}) and fields(obj)

        since = request.params.get("resourceVersion")
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        cond = self._cond()
        async with cond:
            if since in (None, "", "0"):
                backlog: Iterable[dict[str, Any]] = [
                    {"type": "ADDED", "object": copy.deepcopy(o)} for o in self.objects_of(rkey) if wanted(o)
                ]
                position = self.revision
            else:
                position = int(since)
                oldest = self.events[0][0] if self.events else self.revision
                if self.events and position < oldest - 1 and len(self.events) == self.events.maxlen:
                    gone = {
                        "type": "ERROR",
                        "object": {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "status": "Failure",
                            "code": 410,
                            "reason": "Expired",
                            "message": f"too old resource version: {since}",
                        },
                    }
                    await response.write(json.dumps(gone).encode() + b"\n")
                    return response
                backlog = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        self.watchers += 1
        try:
            for event in backlog:
                await response.write(json.dumps(event).encode() + b"\n")
            while not self.closing:
                if raw.transport is None or raw.transport.is_closing():
                    break  # the client hung up (aiohttp does not cancel the handler for us)
                async with cond:
                    remaining = None if deadline is None else deadline - loop.time()
                    if remaining is not None and remaining <= 0:
                        break
                    step = 1.0 if remaining is None else min(1.0, remaining)
                    try:
                        await asyncio.wait_for(
                            cond.wait_for(lambda p=position: self.revision > p or self.closing), step
                        )
                    except TimeoutError:
                        continue
                    batch = [e for rv, r, e in self.events if rv > position and r == rkey]
                    position = self.revision
                for event in batch:
                    if wanted(event["object"]):
                        await response.write(json.dumps(event).encode() + b"\n")
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        finally:
            self.watchers -= 1
        await response.write_eof()
        return response
