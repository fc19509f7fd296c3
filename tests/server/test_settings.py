"""Pure parts of the server: flags vs Azure environment variables, request ids, CORS, query decoding."""

from __future__ import annotations

import os

import pytest

from mlctl.runtime.server.answers import HeaderTooLarge, cors_headers, request_ids
from mlctl.runtime.server.inputs import header_dict, query_parameters
from mlctl.serversettings import SettingsError, parse_settings


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = parse_settings([], {})
    assert (s.entry_script, s.host, s.port, s.max_concurrent, s.max_queue, s.request_timeout_ms) == (
        str(tmp_path / "main.py"),
        "127.0.0.1",
        5001,
        1,
        512,
        3_600_000,
    )
    assert s.max_body_bytes == 100 * 1024 * 1024 and s.cors_origins == () and s.model_dir is None


def test_environment_fallbacks(tmp_path):
    env = {
        "AML_APP_ROOT": str(tmp_path),
        "AZUREML_ENTRY_SCRIPT": "src/score.py",
        "AZUREML_MODEL_DIR": "m",
        "AZUREML_SOURCE_DIRECTORY": "lib",
        "SCORING_TIMEOUT_MS": "1500",
        "AML_CORS_ORIGINS": "http://a.example, http://b.example",
        "SERVICE_NAME": "svc",
        "SERVICE_VERSION": "2",
        "AZUREML_LOG_LEVEL": "debug",
    }
    s = parse_settings([], env)
    assert s.entry_script == str(tmp_path / "src" / "score.py")
    assert s.model_dir == os.path.abspath("m")
    assert s.source_dir == str(tmp_path / "lib")
    assert s.request_timeout_ms == 1500
    assert s.cors_origins == ("http://a.example", "http://b.example")
    assert (s.service_name, s.service_version, s.log_level) == ("svc", "2", "DEBUG")


def test_inline_threshold_from_flag_environment_or_default():
    assert parse_settings([], {}).inline_run_ms == 1.0
    assert parse_settings([], {"MLCTL_INLINE_RUN_MS": "0"}).inline_run_ms == 0.0
    assert parse_settings(["--inline-run-ms", "2.5"], {"MLCTL_INLINE_RUN_MS": "0"}).inline_run_ms == 2.5


def test_flags_win(tmp_path):
    env = {
        "AZUREML_ENTRY_SCRIPT": "env.py",
        "SCORING_TIMEOUT_MS": "1",
        "AML_CORS_ORIGINS": "http://x",
        "AZUREML_MODEL_DIR": "/env/model",
    }
    s = parse_settings(
        [
            "--entry-script",
            str(tmp_path / "flag.py"),
            "--request-timeout-ms",
            "99",
            "--cors-origins",
            "",
            "--model-dir",
            str(tmp_path),
            "--unix-socket",
            "/tmp/x.sock",
        ],
        env,
    )
    assert (s.entry_script, s.request_timeout_ms, s.cors_origins, s.model_dir, s.unix_socket) == (
        str(tmp_path / "flag.py"),
        99,
        (),
        str(tmp_path),
        "/tmp/x.sock",
    )


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--max-concurrent", "0"], {}, "--max-concurrent must be >= 1"),
        (["--max-queue", "-1"], {}, "--max-queue must be >= 0"),
        (["--port", "70000"], {}, "--port must be 0..65535"),
        ([], {"SCORING_TIMEOUT_MS": "soon"}, "SCORING_TIMEOUT_MS must be an integer"),
        (["--max-body-bytes", "0"], {}, "--max-body-bytes must be >= 1"),
        (["--log-level", "chatty"], {}, "--log-level must be one of"),
        ([], {"AZUREML_LOG_LEVEL": "loud"}, "AZUREML_LOG_LEVEL must be one of"),
        ([], {"MLCTL_SWITCH_INTERVAL": "fast"}, "MLCTL_SWITCH_INTERVAL must be a positive number"),
        ([], {"MLCTL_SWITCH_INTERVAL": "0"}, "MLCTL_SWITCH_INTERVAL must be a positive number"),
        ([], {"MLCTL_INLINE_RUN_MS": "short"}, "environment variable MLCTL_INLINE_RUN_MS must be a number of milli"),
        ([], {"MLCTL_INLINE_RUN_MS": "nan"}, "MLCTL_INLINE_RUN_MS must be a number of milliseconds from 0"),
        (["--inline-run-ms", "-1"], {}, "--inline-run-ms must be a number of milliseconds from 0"),
        (["--inline-run-ms", "5000"], {"MLCTL_INLINE_RUN_MS": "2"}, "--inline-run-ms must be .* to 1000, got 5000"),
    ],
)
def test_bad_values(argv, env, message):
    with pytest.raises(SettingsError, match=message):
        parse_settings(argv, env)


def test_port_and_unix_socket_exclusive(capsys):
    with pytest.raises(SystemExit):
        parse_settings(["--port", "1", "--unix-socket", "/tmp/s"], {})
    assert "not allowed with" in capsys.readouterr().err


def test_request_id_rules():
    made, legacy, client = request_ids({})
    assert legacy == made and client == "" and len(made) == 36
    assert request_ids({"x-request-id": "r", "x-ms-client-request-id": "c"}) == ("r", "c", "c")
    assert request_ids({"x-request-id": "r", "x-ms-request-id": "l"}) == ("r", "l", "l")
    assert request_ids({"x-request-id": "r", "x-ms-request-id": "l", "x-ms-client-request-id": "c"}) == ("r", "l", "c")
    with pytest.raises(HeaderTooLarge):
        request_ids({"x-ms-client-request-id": "c" * 101})


def test_cors_rules():
    assert cors_headers((), "http://a", False, None) == {}
    assert cors_headers(("http://a",), None, False, None) == {}
    assert cors_headers(("http://a",), "http://b", True, None) == {}
    assert cors_headers(("*",), "http://b", False, None)["Access-Control-Allow-Origin"] == "*"
    pre = cors_headers(("http://a",), "http://a", True, "x-y")
    assert pre["Access-Control-Allow-Origin"] == "http://a" and pre["Access-Control-Allow-Headers"] == "x-y"


def test_query_parameters_are_json_decoded_where_they_parse():
    assert query_parameters("a=1&b=%5B1,2%5D&c=x&d=null&e=&r=1&r=%22s%22") == {
        "a": 1,
        "b": [1, 2],
        "c": "x",
        "d": None,
        "e": "",
        "r": [1, "s"],
    }


def test_header_dict_is_title_cased_and_joins_repeats():
    from multidict import CIMultiDict

    h = CIMultiDict([("x-probe", "a"), ("X-PROBE", "b"), ("content-type", "text/plain")])
    assert header_dict(h) == {"X-Probe": "a,b", "Content-Type": "text/plain"}
