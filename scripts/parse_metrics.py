"""Reads a metrics exposition on stdin with the Prometheus project's own Python parsers and
prints what they read as JSON: {"families": {name: type}, "samples": [[name, labels, value]]}.

The tests check our text with this independent reader rather than with our own code: the
OpenMetrics parser (strict: types, suffixes, histogram buckets, the final `# EOF`) and the
classic Prometheus text parser must both accept it. Exit 1 with the parser's message if not.
"""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
from prometheus_client.parser import text_string_to_metric_families as classic

text = sys.stdin.read()
try:
    families = list(openmetrics(text))
    list(classic(text))
except Exception as e:  # noqa: BLE001 - any parse failure is the test's failure
    print(f"not valid exposition text: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
out = {"families": {}, "samples": []}
for f in families:
    out["families"][f.name] = f.type
    for s in f.samples:
        out["samples"].append([s.name, s.labels, s.value])
json.dump(out, sys.stdout)
