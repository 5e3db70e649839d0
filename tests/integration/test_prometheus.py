"""GET /metrics: Prometheus text that adds up to what the store holds."""
from __future__ import annotations

from bisect import bisect_left

from prometheus_client.parser import text_string_to_metric_families

from dashapp.store.models import LATENCY_BUCKETS_MS
from tests.integration.test_api_metrics import host, stored, traffic  # noqa: F401


def scrape(client, headers) -> dict[str, list]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.content_type.startswith("text/plain")
    families: dict[str, list] = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        families.setdefault(family.name, []).extend(family.samples)
    return families


def test_metrics_need_a_token(app, client):
    assert client.get("/metrics").status_code == 401
    resp = client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthenticated"
    assert "Bearer" in resp.headers["WWW-Authenticate"]


def test_static_metrics_token(settings, redis_client):
    from dashapp import create_app
    token = "scrape-token-0123456789abcdef"
    dash_app = create_app(settings.model_copy(update={"metrics_token": token}))
    try:
        client = dash_app.server.test_client()
        assert client.get("/metrics", headers={
            "Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/metrics", headers={
            "Authorization": f"Bearer {token}x"}).status_code == 401
    finally:
        dash_app.server.extensions["ops"].close()


def test_request_counters_and_histograms_match_the_store(app, client, admin, host, settings):
    get, mon, _calls = host
    traffic(get)
    mon.flush()
    rows = stored(settings)
    families = scrape(client, admin)

    counts = {(s.labels["endpoint"], s.labels["method"], s.labels["status"]): s.value
              for s in families["ops_requests"] if s.name == "ops_requests_total"}
    expected: dict[tuple, int] = {}
    for (endpoint, method), found in rows.items():
        for r in found:
            key = (endpoint, method, f"{r.status // 100}xx")
            expected[key] = expected.get(key, 0) + 1
    assert counts == expected
    assert any(k[2] == "5xx" for k in counts) and any(k[2] == "4xx" for k in counts)

    samples = families["ops_request_duration_seconds"]
    for (endpoint, method), found in rows.items():
        mine = [s for s in samples if s.labels.get("endpoint") == endpoint
                and s.labels.get("method") == method]
        buckets = {float(s.labels["le"]): s.value for s in mine
                   if s.name.endswith("_bucket")}
        durations = [r.duration_ms for r in found]
        for index, bound in enumerate(LATENCY_BUCKETS_MS):
            # cumulative: every request at or under the bound
            want = sum(1 for d in durations if bisect_left(LATENCY_BUCKETS_MS, d) <= index)
            assert buckets[bound / 1000] == want, (endpoint, bound)
        assert buckets[float("inf")] == len(durations)
        total = next(s.value for s in mine if s.name.endswith("_sum"))
        assert abs(total - sum(durations) / 1000) < 1e-6


def test_counters_survive_retention(app, client, admin, host, settings):
    """Purging raw rows must not make a counter go down."""
    get, mon, _ = host
    for _ in range(5):
        get("/fast")
    mon.flush()
    before = scrape(client, admin)["ops_requests"]
    ops = app.extensions["ops"]
    from sqlalchemy import delete

    from dashapp.store.models import RequestLog
    with ops.store.session() as sess:
        sess.execute(delete(RequestLog))
    after = scrape(client, admin)["ops_requests"]
    assert [s.value for s in after] == [s.value for s in before]


def test_redis_and_cache_figures(app, client, admin, redis_client):
    from ops_agent import cache
    from ops_agent.cache import cached

    ops = app.extensions["ops"]
    cache.configure(client=ops.redis.client, prefix=ops.settings.cache_prefix)

    @cached("prom_ns", ttl=60)
    def square(x):
        return x * x

    for x in (1, 1, 1, 2):
        square(x)
    families = scrape(client, admin)
    hits = {s.labels["namespace"]: s.value for s in families["ops_cache_hits"]
            if s.name == "ops_cache_hits_total"}
    misses = {s.labels["namespace"]: s.value for s in families["ops_cache_misses"]
              if s.name == "ops_cache_misses_total"}
    assert hits["prom_ns"] == 2 and misses["prom_ns"] == 2
    up = {s.labels["instance"]: s.value for s in families["ops_redis_up"]}
    assert up == {"default": 1.0}
    memory = [s.value for s in families["ops_redis_used_memory_bytes"]]
    assert memory and memory[0] > 0
    assert [s.value for s in families["ops_store_up"]] == [1.0]
    cache.reset()
