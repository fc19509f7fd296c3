"""The scoring server's exit after a SIGTERM drain skips module teardown but keeps the script's
atexit handlers, and still waits for a non-daemon thread the script started."""

import signal
import textwrap


def test_exit_runs_atexit_handlers_and_waits_for_non_daemon_threads(servers, tmp_path):
    done, thread_done = tmp_path / "atexit.txt", tmp_path / "thread.txt"
    script = tmp_path / "score.py"
    script.write_text(
        textwrap.dedent(f"""
        import atexit, os, threading, time

        def init():
            atexit.register(lambda: open({str(done)!r}, "w").write("atexit ran"))
            if os.environ.get("LATE_THREAD"):
                def late():
                    time.sleep(0.5)
                    open({str(thread_done)!r}, "w").write("thread finished")
                threading.Thread(target=late).start()        # started by init(): not a daemon

        def run(raw_data):
            return "ok"
    """)
    )
    server = servers.start(script)
    assert server.stop(signal.SIGTERM) == 0
    assert done.read_text() == "atexit ran" and "Stopped." in server.log()

    done.unlink()
    server = servers.start(script, env={"LATE_THREAD": "1"})
    assert server.stop(signal.SIGTERM) == 0
    assert thread_done.read_text() == "thread finished" and done.read_text() == "atexit ran"
