"""Parse a metrics exposition with the reference parser (prometheus_client) and print every
family as JSON: {name: {"type": ..., "samples": [[sample_name, labels, value], ...]}}.

Usage: python3 parse_metrics.py FILE [openmetrics]. The Prometheus text format by default;
with `openmetrics`, the OpenMetrics text format (which must end with `# EOF`). Exits 1 (with
the parser's message) if it does not parse.
"""

import json
import sys


def main() -> int:
    if sys.argv[2:] == ["openmetrics"]:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    out = {}
    try:
        for family in text_string_to_metric_families(text):
            out[family.name] = {
                "type": family.type,
                "samples": [[s.name, s.labels, s.value] for s in family.samples],
            }
    except Exception as e:  # the parser's own error, for the test's message
        print(f"does not parse: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
