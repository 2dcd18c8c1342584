#!/usr/bin/env python3
"""Checks manifest.json the way Navidrome v0.63.2 reads it, plus least privilege.

  check_manifest.py MANIFEST WASM [SCHEMA]

- validates MANIFEST against Navidrome's manifest schema (SCHEMA, default
  ../shared/spec/navidrome-manifest-schema-v0.63.2.json beside the repository);
- `config.schema` compiles (Navidrome rejects the manifest otherwise), the defaults it
  declares satisfy it, and a config without the required keys does not;
- every config property has one form control, every control names a property, and the
  Discord token is a password field;
- least privilege: each permission but `users` (required for scrobbler exports) is used
  by an import of WASM, and every `extism:host/user` import has its permission.
"""
import json, os, subprocess, sys

try:
    import jsonschema
except ImportError:  # not on the machine: install the pinned version from PyPI
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--user", "jsonschema==4.26.0"])
    import site, importlib
    importlib.reload(site)
    import jsonschema

# Host-function name prefix of each permission (navidrome-plugin-abi §4.1).
PREFIX = {"http": "http_", "websocket": "websocket_", "scheduler": "scheduler_", "cache": "cache_",
          "artwork": "artwork_", "subsonicapi": "subsonicapi_", "kvstore": "kvstore_",
          "library": "library_", "taskqueue": "task_", "matcher": "matcher_", "users": "users_"}


def controls(node):
    """Every Control scope in a JSONForms layout, with its options."""
    if isinstance(node, dict):
        if node.get("type") == "Control":
            yield node["scope"], node.get("options", {})
        for v in node.values():
            yield from controls(v)
    elif isinstance(node, list):
        for v in node:
            yield from controls(v)


def main(manifest_path, wasm_path, schema_path=None):
    root = os.path.dirname(os.path.abspath(manifest_path))
    schema_path = schema_path or os.path.join(root, "..", "shared", "spec", "navidrome-manifest-schema-v0.63.2.json")
    errors = []
    m = json.load(open(manifest_path))
    if not os.path.exists(schema_path):
        errors.append("Navidrome's manifest schema not found at %s" % schema_path)
    else:
        schema = json.load(open(schema_path))
        for e in jsonschema.Draft202012Validator(schema).iter_errors(m):
            errors.append("manifest: %s at %s" % (e.message, "/".join(map(str, e.path))))

    cfg = m["config"]["schema"]
    jsonschema.Draft202012Validator.check_schema(cfg)
    v = jsonschema.Draft202012Validator(cfg)
    props = cfg["properties"]
    sample = {k: p["default"] for k, p in props.items() if "default" in p}
    sample.update(clientid="123456789012345678", users=[{"username": "alice", "token": "t"}])
    errors += ["config defaults: " + e.message for e in v.iter_errors(sample)]
    if v.is_valid({k: x for k, x in sample.items() if k not in cfg.get("required", [])}):
        errors.append("config: a config without the required keys validates")

    scopes = {}
    for scope, opts in controls(m["config"]["uiSchema"]):
        scopes.setdefault(scope, []).append(opts)
    item_props = props["users"]["items"]["properties"]
    wanted = {"#/properties/" + k for k in list(props) + list(item_props)}
    for s in sorted(wanted - set(scopes)):
        errors.append("uiSchema: no control for " + s)
    for s in sorted(set(scopes) - wanted):
        errors.append("uiSchema: control for unknown " + s)
    for s, opts in scopes.items():
        if len(opts) > 1:
            errors.append("uiSchema: %d controls for %s" % (len(opts), s))
    if {"format": "password"} != scopes.get("#/properties/token", [{}])[0]:
        errors.append("uiSchema: the Discord token must be a password field")

    info = json.loads(subprocess.check_output([sys.executable, os.path.join(root, "tools", "wasminfo.py"), "--json", wasm_path]))
    user = [i["name"] for i in info["imports"] if i["module"] == "extism:host/user"]
    perms = m.get("permissions", {})
    for p in perms:
        if p != "users" and not any(n.startswith(PREFIX.get(p, "?")) for n in user):
            errors.append("permission %r is declared but no import uses it" % p)
    for n in user:
        # Navidrome's Config service needs no permission: it is always there (ABI §4.1).
        if not n.startswith("config_") and not any(n.startswith(PREFIX[p]) for p in perms if p in PREFIX):
            errors.append("import %r has no permission" % n)

    for e in errors:
        print("manifest: " + e)
    print("manifest: %s (%d permissions, %d settings, %d imports from extism:host/user)"
          % ("FAILED" if errors else "ok", len(perms), len(props), len(user)))
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
