"""Every image the compose files pull, one constant each.

The images of the lab's real programs (Jaeger, the Collector, Zipkin,
Prometheus) come from the program registry, each pinned in its program's
module next to the native version it must match. The storage images here have no
native twin in the lab: they are the versions Jaeger 2.13.0 itself was tested
against, so the pair in compose/ is one upstream already ran together.
``tests/test_compose.py`` fails when a compose file pulls any other tag.
"""

from __future__ import annotations

from tracequest.programs.registry import PROGRAMS

#: Elasticsearch rather than OpenSearch: it is the store Jaeger's own docs and
#: most tutorials start with, and Jaeger 2.13.0's end-to-end tests run 8.19.0
#: (its docker-compose/elasticsearch/v8 at tag v1.76.0).
ELASTICSEARCH_IMAGE = "docker.elastic.co/elasticsearch/elasticsearch:8.19.0"

#: Jaeger 2.13.0's end-to-end tests run Cassandra 5.0, with the schema created
#: by Jaeger itself; 5.0.6 was the 5.0 release when Jaeger 2.13.0 came out.
CASSANDRA_IMAGE = "cassandra:5.0.6"

#: What a compose file may pull (the demo services are built, not pulled).
PULLED_IMAGES = (*(program.image for program in PROGRAMS), ELASTICSEARCH_IMAGE, CASSANDRA_IMAGE)
