"""Validate an OpenAPI document with an independent validator (openapi-spec-validator).

Usage: python3 validate_openapi.py FILE. Prints every error and exits 1 if there is any.
"""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path)
        print(f"{where}: {e.message}"[:400])
    print(f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
