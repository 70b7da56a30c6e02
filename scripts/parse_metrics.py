"""Reads a metrics exposition on stdin with the Prometheus project's own Python parsers and
prints every sample they read, one a line: NAME TAB LABELS TAB VALUE, where LABELS is
key=value pairs joined by the unit separator (0x1f); then one line per family:
"# family" TAB NAME TAB TYPE.

The tests check our text with this independent reader rather than with our own code: the
OpenMetrics parser (strict: types, suffixes, histogram buckets, the final `# EOF`) and the
classic Prometheus text parser must both accept it. Exit 1 with the parser's message if not.
"""
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
for f in families:
    for s in f.samples:
        labels = "\x1f".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}\t{labels}\t{s.value!r}")
for f in families:
    print(f"# family\t{f.name}\t{f.type}")
