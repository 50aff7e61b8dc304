"""Validates FHIR R4 JSON files against the official FHIR R4 JSON schema (draft-06).

usage: validate_fhir.py SCHEMA FILE...
Prints one JSON object: {file: [error, ...]} with each error's JSON path and message; exits 0.
Each bundle entry's resource is validated against the definition its resourceType names
(what the schema's discriminator says), so an error names the resource, not 146 alternatives.
"""

import json
import sys

from jsonschema import Draft6Validator


def main() -> None:
    schema = json.load(open(sys.argv[1], encoding="utf-8"))
    validators = {}

    def validator(kind):
        if kind not in validators:
            if kind not in schema["definitions"]:
                return None
            sub = {"$ref": f"#/definitions/{kind}", "definitions": schema["definitions"]}
            validators[kind] = Draft6Validator(sub)
        return validators[kind]

    report = {}
    for path in sys.argv[2:]:
        doc = json.load(open(path, encoding="utf-8"))
        errors = []
        # The bundle itself, with its entries' resources checked one by one below.
        shell = dict(doc)
        shell["entry"] = [{k: v for k, v in e.items() if k != "resource"} for e in doc.get("entry", [])]
        for err in validator("Bundle").iter_errors(shell):
            errors.append(f"Bundle{''.join(f'[{p!r}]' for p in err.absolute_path)}: {err.message[:300]}")
        for i, entry in enumerate(doc.get("entry", [])):
            resource = entry.get("resource", {})
            kind = resource.get("resourceType")
            v = validator(kind) if isinstance(kind, str) else None
            if v is None:
                errors.append(f"entry[{i}]: unknown resourceType {kind!r}")
                continue
            for err in v.iter_errors(resource):
                where = "".join(f"[{p!r}]" for p in err.absolute_path)
                errors.append(f"entry[{i}] {kind}{where}: {err.message[:300]}")
        report[path] = errors
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
