"""Sweeps on Ray: the results store, resuming an interrupted sweep, and a real local cluster
(a head and a second worker node, started as processes) that loses a worker mid-sweep."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fpga_dnn.sweep import ResultStore, Task, run_tasks

RAY = Path(sys.executable).parent / "ray"


def probe_tasks(n: int, seconds: float = 0.3, gate: str = "", gated_from: int | None = None):
    """``n`` probe points; those from index ``gated_from`` on wait for the file ``gate`` to exist."""
    return [Task(f"probe{i:02d}", "fpga_dnn.sweep.probe:busy_point",
                 {"value": i, "seconds": seconds, **({"gate": gate} if gated_from is not None and i >= gated_from
                                                      else {})}, f"p{i}")
            for i in range(n)]


def stored_attempts(store: ResultStore, key: str) -> list:
    return [a for a in store.attempts(key) if a.get("outcome") == "stored"]


def test_store_keeps_the_first_complete_record(tmp_path):
    st = ResultStore(tmp_path)
    assert st.put("k", {"result": 1}) is True
    assert st.put("k", {"result": 2}) is False
    assert st.get("k") == {"result": 1} and list(st.keys()) == ["k"]
    assert not list((tmp_path / "results").glob(".*tmp"))


def test_failed_point_keeps_its_error_and_the_sweep_goes_on(tmp_path):
    st = ResultStore(tmp_path)
    tasks = probe_tasks(2, 0.0) + [Task("bad", "fpga_dnn.sweep.probe:busy_point", {"value": 1, "nope": 2}, "bad")]
    recs = run_tasks(tasks, st)
    assert [("error" in r) for r in recs] == [False, False, True]
    assert "unexpected keyword argument 'nope'" in recs[2]["error"]
    assert "Traceback" in Path(recs[2]["log"]).read_text()
    assert st.get("bad") is None   # a failure is not a result: a re-run tries again
    assert sorted(st.keys()) == ["probe00", "probe01"]


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    """Ctrl-C after some points, then the same sweep again: only the missing points run. The points
    from the 4th on wait for a gate file, so the interrupt lands when exactly 3 are stored and the
    4th has begun, however loaded the machine is."""
    gate, k = tmp_path / "gate", 3
    store = tmp_path / "store"
    code = ("import sys; from fpga_dnn.sweep import ResultStore, run_tasks; "
            "from tests.test_sweep import probe_tasks; "
            f"run_tasks(probe_tasks(8, 0.3, {str(gate)!r}, {k}), ResultStore({str(store)!r}))")
    # SIGINT at its default in the child: a pytest-xdist worker ignores it, and an ignored signal
    # stays ignored across exec (Python then installs no KeyboardInterrupt handler).
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    st = ResultStore(store)
    try:
        deadline = time.time() + 300
        # in process (one worker) the points run in order: the 4th's attempt begins after the 3rd is stored
        while not st.attempts(f"probe{k:02d}") and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and st.attempts(f"probe{k:02d}"), "the sweep did not reach the gate"
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = {key: st.get(key)["finished"] for key in st.keys()}
    assert sorted(first) == [f"probe{i:02d}" for i in range(k)], "the sweep was interrupted at the gate"
    assert [a.get("outcome") for a in st.attempts(f"probe{k:02d}")] == [None]   # interrupted mid-point
    gate.touch()
    recs = run_tasks(probe_tasks(8, 0.3, str(gate), k), st)
    assert [r["result"]["value"] for r in recs] == list(range(8))
    assert [bool(r.get("reused")) for r in recs] == [True] * k + [False] * (8 - k)
    for key, finished in first.items():   # finished points: not recomputed (one attempt ever), same record
        assert st.get(key)["finished"] == finished and len(stored_attempts(st, key)) == len(st.attempts(key)) == 1
    for key in set(st.keys()) - set(first):
        assert len(stored_attempts(st, key)) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(monkeypatch):
    """A head node and a second worker node on this machine, one CPU each, as real processes
    (token authentication, the token shared by the nodes and the driver as a cluster's would be)."""
    import secrets

    port = _free_port()
    tmp = Path("/tmp") / f"fdray{os.getpid()}"   # ray's socket paths must stay short
    for k, v in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
                 "RAY_AUTH_TOKEN": secrets.token_hex(32)}.items():
        monkeypatch.setenv(k, v)
    env = dict(os.environ)
    common = ["--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([str(RAY), "start", "--head", f"--port={port}", "--include-dashboard=false",
                        f"--temp-dir={tmp}", *common], check=True, env=env, capture_output=True, timeout=180)
        subprocess.run([str(RAY), "start", f"--address=127.0.0.1:{port}", *common], check=True, env=env,
                       capture_output=True, timeout=180)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.extended
@pytest.mark.slow
def test_sweep_on_a_cluster_survives_a_killed_worker(tmp_path, ray_cluster):
    """The real Pareto sweep (tiny: a teacher, a base, two points) on a two-node Ray cluster,
    one worker killed mid-point: every point computed exactly once, results equal to the
    ``workers=1`` run's."""
    from fpga_dnn.compress.pareto import Recipe, _recipe_key, run_sweep
    from fpga_dnn.train import TrainConfig

    recipes = [Recipe("qat_w6", "qat", "6-bit", 6, 6),
               Recipe("prune75", "prune", "6-bit 75% pruned",
                      compress={"techniques": ["prune"], "sparsity": 0.75, "epochs": 2})]
    train = TrainConfig(epochs=3, float_baseline=False)
    local = run_sweep("digits_mlp", tmp_path / "w1", recipes=recipes, yosys="none", train=train, workers=1)

    out = tmp_path / "cluster"
    victim = _recipe_key("digits_mlp", recipes[1], train)
    attempts = out / "store" / "attempts" / victim
    killed = {}

    def kill_first_attempt():
        deadline = time.time() + 600
        while time.time() < deadline:
            files = list(attempts.glob("*.json")) if attempts.is_dir() else []
            if files:
                time.sleep(1.0)   # mid-point
                rec = json.loads(files[0].read_text())
                os.kill(rec["pid"], signal.SIGKILL)
                killed.update(rec)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_attempt, daemon=True)
    killer.start()
    remote = run_sweep("digits_mlp", out, recipes=recipes, yosys="none", train=train, ray_address=ray_cluster)
    killer.join(timeout=5)
    assert killed, "the victim's attempt was never seen"
    st = ResultStore(out / "store")
    tries = st.attempts(victim)
    assert len(tries) >= 2 and "outcome" not in tries[0] and tries[0]["pid"] == killed["pid"]
    for key in st.keys():   # every point (teacher, bases, recipes) stored by exactly one attempt
        assert len(stored_attempts(st, key)) == 1, key
    assert len(list(st.keys())) == 4
    fields = ("name", "accuracy", "luts", "dsp", "latency_cycles", "bit_exact", "weights", "sparsity")
    assert [[getattr(p, f) for f in fields] for p in remote.points] == \
           [[getattr(p, f) for f in fields] for p in local.points]
    assert all(p.worker and p.worker != local.points[0].worker for p in remote.points)


@pytest.mark.extended
@pytest.mark.slow
def test_search_finds_points_and_resumes(tmp_path):
    """A tiny NSGA-II search: every trial bit-exact and costed, constraints applied; the same
    search again computes nothing (every trial's recipe is in the store)."""
    from fpga_dnn.compress.explore import run_search
    from fpga_dnn.train import TrainConfig

    train = TrainConfig(epochs=2, float_baseline=False)
    rep = run_search("digits_mlp", tmp_path, trials=3, batch=3, train=train, grid=False, board="pynq-z2")
    assert len(rep.trials) == 3 and all(t["bit_exact"] == 1.0 for t in rep.trials)
    assert all(t["feasible"] == (t["luts"] <= 53_200 and t["dsp"] <= 220) for t in rep.trials)
    assert rep.search_front and set(rep.search_front) <= {t["recipe"] for t in rep.trials}
    assert (tmp_path / "explore.png").read_bytes()[:4] == b"\x89PNG"
    stats_before = len(list(ResultStore(tmp_path / "store").keys()))
    again = run_search("digits_mlp", tmp_path, trials=3, batch=3, train=train, grid=False, board="pynq-z2")
    assert [t["recipe"] for t in again.trials] == [t["recipe"] for t in rep.trials]
    assert len(list(ResultStore(tmp_path / "store").keys())) == stats_before


@pytest.mark.extended
@pytest.mark.slow
def test_greedy_bitwidth_round_on_local_ray_equals_inline(tmp_path, digits_mlp_qkeras, digits):
    """One greedy round with its probes on a local Ray (2 workers): the same history as inline."""
    from fpga_dnn.compress.bitwidth import greedy_search
    from fpga_dnn.compress.chain import clone
    from fpga_dnn.compress.finetune import FineTune
    from fpga_dnn.compress.search_tasks import SearchRunner

    _, model = digits_mlp_qkeras
    ft = FineTune(epochs=0, patience=1)
    inline = greedy_search(clone(model), digits, 10.0, max_rounds=1, ft=ft)
    on_ray = greedy_search(clone(model), digits, 10.0, max_rounds=1, ft=ft,
                           runner=SearchRunner(workers=2, store=str(tmp_path / "store")))
    assert on_ray.history == inline.history
    workers = {r["worker"] for r in (json.loads(p.read_text()) for p in (tmp_path / "store" / "results").glob("*.json"))}
    assert len(workers) >= 1 and all(":" in w for w in workers)
