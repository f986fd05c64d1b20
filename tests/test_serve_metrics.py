"""`rtseg serve`'s GET /metrics: Prometheus text a real scrape parses, counting real requests."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from rtseg.serve import create_app
from tests.test_node_metrics import dashboard_metrics
from tests.test_serve import (  # noqa: F401  (fixtures)
    MAX_BYTES,
    encoded,
    frame,
    held_loader,
    segmenter,
    serving,
)


def scrape(client) -> dict:
    """GET /metrics -> {(sample name, frozenset of labels): value}."""
    reply = client.get("/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def test_an_openmetrics_scraper_gets_openmetrics(segmenter):  # noqa: F811
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse

    with serving(create_app(segmenter, max_bytes=MAX_BYTES)) as client:
        assert client.get("/healthz").status_code == 200
        reply = client.get("/metrics", headers={
            "Accept": "application/openmetrics-text; version=1.0.0"})
    assert reply.headers["content-type"].startswith("application/openmetrics-text")
    assert reply.text.endswith("# EOF\n")
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in parse(reply.text) for s in family.samples}
    assert value(samples, "rtseg_serve_requests_total", route="/healthz", method="GET",
                 code="200") == 1


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_latency_and_stages_are_counted(segmenter, frame):  # noqa: F811
    with serving(create_app(segmenter, max_bytes=MAX_BYTES)) as client:
        for _ in range(2):
            assert client.post("/segment", content=encoded(frame)).status_code == 200
        assert client.post("/segment", content=b"not an image").status_code == 415
        assert client.post("/segment?format=json", content=encoded(frame)).status_code == 200
        assert client.get("/model").status_code == 200
        assert client.get("/no/such/route").status_code == 404
        samples = scrape(client)
        again = scrape(client)
    total = "rtseg_serve_requests_total"
    assert value(samples, total, route="/segment", method="POST", code="200") == 3
    assert value(samples, total, route="/segment", method="POST", code="415") == 1
    assert value(samples, total, route="/model", method="GET", code="200") == 1
    assert value(samples, total, route="other", method="GET", code="404") == 1
    # the scrape counts itself once it has answered: the second sees the first
    assert value(samples, total, route="/metrics", method="GET", code="200") == 0
    assert value(again, total, route="/metrics", method="GET", code="200") == 1
    latency = "rtseg_serve_request_duration_seconds"
    assert value(samples, f"{latency}_count", route="/segment") == 4
    assert value(samples, f"{latency}_bucket", route="/segment", le="+Inf") == 4
    assert value(samples, f"{latency}_sum", route="/segment") > 0
    stages = "rtseg_serve_segment_stage_seconds"
    for stage in ("read_decode", "wait", "pre", "infer", "post"):
        assert value(samples, f"{stages}_count", stage=stage) == 3, stage
    assert value(samples, f"{stages}_sum", stage="infer") > 0
    assert value(samples, "rtseg_serve_requests_in_progress") == 1  # the scrape itself
    assert value(samples, "rtseg_serve_model_ready") == 1
    info = [labels for (name, labels) in samples if name == "rtseg_serve_model_info"]
    assert len(info) == 1 and dict(info[0])["name"] == segmenter.spec.name
    assert dict(info[0])["input_size"] == "x".join(map(str, segmenter.spec.input_size))
    used = dashboard_metrics("rtseg_serve_")  # launch/grafana/rtseg.json asks for what is there
    assert used and used <= {name for name, _ in samples}, used - {n for n, _ in samples}


def test_two_apps_count_apart(segmenter, frame):  # noqa: F811
    with serving(create_app(segmenter, max_bytes=MAX_BYTES)) as first:
        assert first.post("/segment", content=encoded(frame)).status_code == 200
        with serving(create_app(segmenter, max_bytes=MAX_BYTES)) as second:
            samples = scrape(second)
    assert value(samples, "rtseg_serve_requests_total", route="/segment", method="POST",
                 code="200") == 0


def test_while_the_model_loads_metrics_answer_and_say_so(frame):  # noqa: F811
    """/metrics is never a 503 (a scraper keeps scraping): model_ready 0 and no model info
    while the model loads, 1 and its name once it is open; the 503s are counted."""
    with held_loader() as (loader, release, ready):
        with serving(create_app(loader, max_bytes=MAX_BYTES)) as client:
            assert client.post("/segment", content=encoded(frame)).status_code == 503
            loading = scrape(client)
            release.set()
            assert ready.wait(60)
            assert client.post("/segment", content=encoded(frame)).status_code == 200
            served = scrape(client)
            name = loader.segmenter.spec.name
    assert value(loading, "rtseg_serve_model_ready") == 0
    assert not [k for k in loading if k[0] == "rtseg_serve_model_info"]
    assert value(loading, "rtseg_serve_requests_total", route="/segment", method="POST",
                 code="503") == 1
    assert value(served, "rtseg_serve_model_ready") == 1
    assert value(served, "rtseg_serve_requests_total", route="/segment", method="POST",
                 code="200") == 1
    assert [dict(k[1])["name"] for k in served if k[0] == "rtseg_serve_model_info"] == [name]
