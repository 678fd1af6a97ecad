"""``diffbmp batch``: many inputs to jobs, a local process pool and a Ray cluster, jobs that fail
alone, workers killed mid-fit and retried, re-runs that skip done jobs and resume the rest."""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp.batching import batch, collect_jobs
from diffbmp.cli import main
from diffbmp.errors import ConfigError, InputError
from diffbmp.scene import Scene

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
#: Tiny fits: a few seconds for a whole batch.
QUICK = ["--set", "steps=3", "--set", "n=6", "--set", "size=24", "--set", "output.frames=2", "--set", "output.mp4=false",
         "--set", "video.max_frames=2", "--set", "video.steps_per_frame=2", "--set", "video.mp4=false"]
#: A fit long enough to be killed in the middle of (about 2 s), checkpointed often.
LONG = ["--set", "steps=400", "--set", "n=12", "--set", "size=32", "--set", "output.frames=2",
        "--set", "output.mp4=false", "--set", "output.checkpoint_every=10"]


def photo(path: Path, size: tuple[int, int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.BILINEAR).save(path)
    return path


def clip(path: Path) -> Path:
    frames = [Image.new("RGB", (32, 24), (40 * i, 90, 200 - 40 * i)) for i in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def summary(out: Path) -> dict[str, dict[str, str]]:
    with (out / "summary.csv").open(newline="") as handle:
        return {row["name"]: row for row in csv.DictReader(handle)}


def same_scene(a: Path, b: Path) -> None:
    ended, expected = Scene.load(a), Scene.load(b)
    for name, tensor in ended.raw_tensors().items():
        assert torch.equal(tensor, expected.raw_tensors()[name]), f"{name} differs"


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the batch ended before {path.name} appeared: {process.communicate()[1]}")
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def worker_pid(folder: Path) -> int:
    return int((folder / ".worker").read_text().strip().rsplit(":", 1)[1])


def kill_mid_fit(folder: Path) -> int:
    """SIGKILL the worker painting ``folder``; returns its pid. The fit must not have ended."""
    pid = worker_pid(folder)
    os.kill(pid, signal.SIGKILL)
    assert not (folder / "result.json").exists(), "the fit ended before its worker was killed: make LONG longer"
    return pid


# -- inputs to jobs -----------------------------------------------------------------------------


def test_folders_globs_and_names(tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("b10.png", "b2.png", "notes.txt"):
        (shots / name).write_bytes(b"x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "b2.jpg").write_bytes(b"x")
    jobs = collect_jobs([str(shots), str(tmp_path / "other" / "*.jpg"), "skimage:camera"], tmp_path / "out")
    assert [job.name for job in jobs] == ["b2", "b10", "b2_2", "camera"]  # natural order; names made unique
    assert all(Path(job.folder).is_absolute() and Path(job.folder).parent == (tmp_path / "out").resolve() for job in jobs)
    assert jobs[0].target == str((shots / "b2.png").resolve())


def test_manifests_carry_per_job_overrides(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "jobs.csv").write_text("input,name,n,size\na.png,first,40,\nskimage:coffee,,,64\n")
    (tmp_path / "jobs.json").write_text(json.dumps([{"input": "a.png", "name": "third", "n": 8, "optim.lr.means": 0.01}]))
    jobs = collect_jobs([str(tmp_path / "jobs.csv"), str(tmp_path / "jobs.json")], tmp_path / "out", overrides=["steps=5"])
    assert [(job.name, job.overrides) for job in jobs] == [
        ("first", ["steps=5", "n=40"]), ("coffee", ["steps=5", "size=64"]), ("third", ["steps=5", "n=8", "optim.lr.means=0.01"])]
    assert jobs[0].target == str((tmp_path / "a.png").resolve())  # relative to the manifest


@pytest.mark.parametrize("setup, inputs, message", [
    (lambda t: None, ["missing.png"], "does not exist"),
    (lambda t: (t / "empty").mkdir(), ["empty"], "holds no pictures or videos"),
    (lambda t: None, ["*.webp"], "matches no pictures"),
    (lambda t: (t / "m.csv").write_text("name,n\nx,4\n"), ["m.csv"], "row 2 of the manifest .* has no input"),
    (lambda t: (t / "m.json").write_text('{"input": "a.png"}'), ["m.json"], "must be a JSON list of objects"),
    (lambda t: (t / "m.json").write_text('[{"input": "skimage:a", "name": "x"}, {"input": "skimage:b", "name": "x"}]'),
     ["m.json"], "two jobs are named 'x'"),
    (lambda t: None, [], "name at least one input"),
])
def test_bad_inputs_are_named(tmp_path, monkeypatch, setup, inputs, message):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    with pytest.raises((InputError, ConfigError), match=message):
        collect_jobs(inputs, tmp_path / "out")


def test_bad_batch_arguments_fail_before_any_job(tmp_path, capsys):
    assert main(["batch", "default", "skimage:camera", "--out", str(tmp_path / "o"), "--export", "tiff"]) == 2
    assert "unknown export format 'tiff'" in capsys.readouterr().err
    assert main(["batch", "default", "skimage:camera", "--out", str(tmp_path / "o"), "--set", "n=0"]) == 2
    assert "`n` = 0" in capsys.readouterr().err
    assert main(["batch", "default", "skimage:camera", "--out", str(tmp_path / "o"), "--set", "n=40000",
                 "--export", "psd"]) == 2
    assert "40000 primitives are more layers than a PSD holds" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# -- the local engine ---------------------------------------------------------------------------


@pytest.mark.slow
def test_mixed_pictures_and_a_clip_with_a_corrupt_picture_failing_alone(tmp_path, capsys):
    shots = tmp_path / "shots"
    shots.mkdir()
    photo(shots / "wide.png", (40, 30), 1)
    photo(shots / "tall.jpg", (30, 44), 2)
    clip(shots / "wave.gif")
    (shots / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "batch"
    code = main(["batch", "default", str(shots), "skimage:camera", "--out", str(out), "--workers", "2",
                 "--export", "psd,svg", *QUICK])
    err = capsys.readouterr().err
    assert code == 1, err  # a job failed: the batch says so in its exit code
    rows = summary(out)
    assert list(rows) == ["broken", "tall", "wave", "wide", "camera"]  # input order
    assert rows["broken"]["status"] == "failed" and "broken.png" in rows["broken"]["error"], rows["broken"]
    for name in ("tall", "wave", "wide", "camera"):
        row = rows[name]
        assert row["status"] == "done" and float(row["psnr"]) > 5 and int(row["primitives"]) == 6, row
        assert (out / name / "preview_target.png").is_file() and (out / name / "preview_painting.png").is_file()
    for name in ("tall", "wide", "camera"):  # pictures are exported; a clip keeps a scene per frame
        assert (out / name / "scene.npz").is_file()
        assert (out / name / "painting.psd").is_file() and (out / name / "painting.svg").is_file()
    assert sorted(p.name for p in (out / "wave" / "frames").iterdir()) == ["scene_00000.npz", "scene_00001.npz"]
    page = (out / "index.html").read_text()
    assert 'src="camera/preview_painting.png"' in page and "4 done, 1 failed" in page
    assert "[5/5]" in err and "per minute" in err and "Traceback" not in err

    # The same command again: done jobs are skipped untouched, the failed one is tried again
    # (settings of outputs only, such as output.frames, do not change a painting).
    stamps = {name: (out / name / "result.json").stat().st_mtime_ns for name in ("tall", "camera")}
    (shots / "broken.png").unlink()
    photo(shots / "broken.png", (24, 24), 3)
    code = main(["batch", "default", str(shots), "skimage:camera", "--out", str(out), "--workers", "2",
                 "--export", "psd,svg", *QUICK, "--set", "output.frames=3"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("skipped (done before)") == 4 and all(row["status"] == "done" for row in summary(out).values())
    assert {name: (out / name / "result.json").stat().st_mtime_ns for name in stamps} == stamps

    # Other settings for the same folder: done jobs are not silently kept or overwritten.
    assert main(["batch", "default", str(shots / "tall.jpg"), "--out", str(out), "--export", "psd,svg", *QUICK[2:],
                 "--set", "n=7"]) == 1
    assert "painted with other settings before (`n` (6 -> 7), `steps` (3 -> 500)) in " in summary(out)["tall"]["error"]
    capsys.readouterr()


def test_gpu_workers_stay_within_the_visible_gpus(monkeypatch):
    from diffbmp.batching.engines import gpu_ids

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_ids(2) == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3,5")  # a batch given GPUs 2, 3 and 5 pins its workers to them
    assert gpu_ids(2) == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8e1f")
    assert gpu_ids(1) == ["GPU-8e1f"]


def test_an_interrupted_job_is_not_resumed_with_other_settings(tmp_path, capsys):
    from diffbmp.config import load_config
    from diffbmp.fitting.image import run

    shots = tmp_path / "shots"
    shots.mkdir()
    photo(shots / "cat.png", (24, 24), 1)
    out = tmp_path / "out"
    settings = [arg for arg in QUICK if arg != "--set"] + ["steps=40", "output.checkpoint_every=5"]

    def interrupt(info):
        if info.step == 12:
            raise KeyboardInterrupt

    config = load_config("default", [*settings, f"target={json.dumps(str(shots / 'cat.png'))}"])
    with pytest.raises(KeyboardInterrupt):  # as a batch stopped mid-fit leaves it
        run(config, out=out / "cat", quiet=True, callback=interrupt)
    assert (out / "cat" / "checkpoint.pt").is_file()
    sets = [part for setting in settings for part in ("--set", setting)]
    assert main(["batch", "default", str(shots), "--out", str(out), *sets, "--set", "n=7"]) == 1
    error = summary(out)["cat"]["error"]
    assert "started with other settings before (`n` (6 -> 7)) in " in error and "--force" not in error, error
    capsys.readouterr()
    # With its own settings it resumes and finishes.
    assert main(["batch", "default", str(shots), "--out", str(out), *sets]) == 0, capsys.readouterr().err
    assert summary(out)["cat"]["status"] == "done"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The scene of the long job, painted without interruption."""
    out = tmp_path_factory.mktemp("reference")
    photo(out / "long.png", (36, 28), 7)
    result = batch([out / "long.png"], "default", out / "batch", workers=1, overrides=[o for o in LONG if o != "--set"], quiet=True)
    assert [row["status"] for row in result.rows] == ["done"]
    return out / "long.png", out / "batch" / "long" / "scene.npz"


#: Batches started by the running test (in sessions of their own), stopped when it ends.
STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def stop_started_batches():
    yield
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:  # a test that failed half-way: its batch and workers go too
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()


def batch_process(*args: str, env: dict[str, str] = ENV) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "diffbmp.cli", "batch", "default", *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    STARTED.append(process)
    return process


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_worker_killed_mid_fit_is_retried_and_resumes_to_the_uninterrupted_scene(tmp_path, uninterrupted):
    picture, expected = uninterrupted
    out = tmp_path / "batch"
    process = batch_process(str(picture), "--out", str(out), "--workers", "1", *LONG)
    wait_for(out / "long" / "checkpoint.pt", process)
    killed = kill_mid_fit(out / "long")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    row = summary(out)["long"]
    assert row["status"] == "done" and not row["worker"].endswith(f":{killed}"), row
    same_scene(out / "long" / "scene.npz", expected)


@pytest.mark.slow
def test_a_worker_dying_more_often_than_allowed_fails_its_job_only(tmp_path, uninterrupted):
    picture, _ = uninterrupted
    out = tmp_path / "batch"
    process = batch_process(str(picture), "skimage:camera", "--out", str(out), "--workers", "1", "--retries", "0", *LONG)
    wait_for(out / "long" / "checkpoint.pt", process)
    kill_mid_fit(out / "long")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err
    rows = summary(out)
    assert rows["long"]["status"] == "failed" and "its worker died 1 time " in rows["long"]["error"], rows
    assert rows["camera"]["status"] == "done"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_the_batch_and_the_same_command_finishes_it(tmp_path, uninterrupted):
    picture, expected = uninterrupted
    out = tmp_path / "batch"
    args = [str(picture), "skimage:camera", "--out", str(out), "--workers", "1", *LONG]
    process = batch_process(*args)
    wait_for(out / "long" / "checkpoint.pt", process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    rows = summary(out)
    assert rows["long"]["status"] == "interrupted" and "camera" not in rows, rows  # nothing new started
    assert "Traceback" not in err
    process = batch_process(*args)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert {name: row["status"] for name, row in summary(out).items()} == {"long": "done", "camera": "done"}
    same_scene(out / "long" / "scene.npz", expected)


# -- the Ray engine -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_ray_cluster_is_named_at_once(tmp_path, capsys):
    pytest.importorskip("ray", reason="the Ray engine needs the diffbmp[ray] extra")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    assert main(["batch", "default", "skimage:camera", "--out", str(tmp_path / "o"), "--engine", "ray",
                 "--address", address]) == 2
    assert f"cannot reach the Ray cluster at {address}" in capsys.readouterr().err
    assert time.monotonic() - started < 30 and not (tmp_path / "o").exists()


def session_members(session: int) -> list[int]:
    """The live processes of a session (Linux: from /proc), e.g. the Ray head and all it started."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # after the name: state, ppid, pgrp, session
            members.append(int(entry.name))
    return members


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray head on 127.0.0.1 with 2 CPUs, in a session of its own and with a token of its own;
    yields its address and the environment that reaches it. Stopped afterwards with every process
    it started."""
    pytest.importorskip("ray", reason="the Ray engine needs the diffbmp[ray] extra")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray")  # short: Ray's socket paths must stay under 108 characters
    # Ray 2.5x and later authenticate with a token; older versions ignore these variables.
    env = dict(ENV, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    log = Path(temp) / "head.log"
    with log.open("w") as handle:
        head = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
             "--port", str(port), "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false",
             "--disable-usage-stats", "--object-store-memory", str(100 * 2**20), "--temp-dir", temp],
            env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log.read_text():
            assert head.poll() is None, f"the Ray head did not start: {log.read_text()}"
            assert time.monotonic() < deadline, f"the Ray head took too long to start: {log.read_text()}"
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", env
    finally:
        signal_all(session_members(head.pid), signal.SIGTERM)
        deadline = time.monotonic() + 3
        while session_members(head.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        signal_all(session_members(head.pid), signal.SIGKILL)  # Ray's own shutdown can take half a minute
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def start_ray_batch(inputs: list[str], out: Path, ray_cluster: tuple[str, dict[str, str]]) -> tuple[subprocess.Popen, list[str]]:
    """A batch of ``inputs`` (the long fit among them) on the test's Ray cluster, returned once
    the long fit has written a checkpoint, with the command's arguments (to run it again)."""
    address, env = ray_cluster
    args = [*inputs, "--out", str(out), "--engine", "ray", "--address", address, *LONG]
    process = batch_process(*args, env=env)
    wait_for(out / "long" / "checkpoint.pt", process, seconds=180)
    return process, args


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ray_engine_retries_a_killed_worker_to_completion(tmp_path, uninterrupted, ray_cluster):
    picture, expected = uninterrupted
    out = tmp_path / "batch"
    process, _ = start_ray_batch([str(picture), "skimage:camera"], out, ray_cluster)
    killed = kill_mid_fit(out / "long")
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    rows = summary(out)
    assert rows["long"]["status"] == "done" and not rows["long"]["worker"].endswith(f":{killed}"), rows
    assert rows["camera"]["status"] == "done"
    assert "on the ray engine (2 at a time, on cpu)" in err
    same_scene(out / "long" / "scene.npz", expected)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_a_ray_batch_and_the_same_command_finishes_it(tmp_path, uninterrupted, ray_cluster):
    picture, expected = uninterrupted
    _, env = ray_cluster
    out = tmp_path / "batch"
    process, args = start_ray_batch([str(picture)], out, ray_cluster)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143 and "interrupted (SIGTERM)" in err, err
    assert summary(out)["long"]["status"] == "interrupted" and "Traceback" not in err
    process = batch_process(*args, env=env)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert summary(out)["long"]["status"] == "done"
    same_scene(out / "long" / "scene.npz", expected)
