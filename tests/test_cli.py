"""The command line: help texts, check-config, scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SUPPORT, make_mail

MARKER_CONFIG = '[model]\nfactory = "marker_classifier:build"\n'


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True, text=True, input=stdin, cwd=REPO, timeout=120,
        env={**os.environ, "PYTHONPATH": f"{SUPPORT}:{REPO}", **(env or {})},
    )


@pytest.mark.parametrize("command", ["", "run", "scan", "check-config", "demo", "train", "evaluate", "classify",
                                     "build-base", "model", "retrain", "config-reference"])
def test_every_command_explains_itself_with_help(command):
    result = cli(*([command] if command else []), "--help")
    assert result.returncode == 0
    assert "Usage:" in result.stdout and len(result.stdout.splitlines()) > 4


def test_check_config_reports_every_problem_at_once_with_key_names(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[mailboxes]]\nname = "support"\nhost = "imap.example.com"\nport = 70000\nusername = "u"\n'
        'security = "tls"\npassword = "changeme"\n'
        '[thresholds]\nabusive = 1.4\n[daemon]\nbatch_size = 0\nmax_attemps = 3\n'
        '[tagging.routes.extortion]\nkeyword = "Extortion"\nmode = "move"\n'
    )
    result = cli("-c", str(config), "check-config")
    assert result.returncode == 2
    for key in ("mailboxes[support].port", "thresholds.abusive", "daemon.batch_size",
                "daemon.max_attemps: unknown key", "tagging.routes.extortion: mode = 'move' needs a folder"):
        assert key in result.stderr


def test_check_config_rejects_a_placeholder_password_and_accepts_the_env_secret(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[[mailboxes]]\nname = "support"\nhost = "imap.example.com"\nusername = "u"\npassword = "changeme"\n')
    assert "placeholder" in cli("-c", str(config), "check-config").stderr
    config.write_text('[[mailboxes]]\nname = "support"\nhost = "imap.example.com"\nusername = "u"\n')
    ok = cli("-c", str(config), "check-config", env={"WARNINGSHOT_MAILBOX_SUPPORT_PASSWORD": "a-real-secret"})
    assert ok.returncode == 0, ok.stderr
    assert "1 mailbox(es)" in ok.stdout


def test_check_config_names_a_missing_or_unparsable_file(tmp_path):
    assert "does not exist" in cli("-c", str(tmp_path / "nope.toml"), "check-config").stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[daemon\n")
    result = cli("-c", str(broken), "check-config")
    assert result.returncode == 2 and "not valid TOML" in result.stderr


def test_precision_is_checked_and_the_older_quantize_key_still_means_int8(tmp_path):
    from service.errors import ConfigError
    from service.settings import load_settings

    config = tmp_path / "c.toml"
    config.write_text('[model]\nquantize = true\nprecision = "bf16"\n')
    with pytest.raises(ConfigError, match="contradicts precision"):
        load_settings(config)
    config.write_text('[model]\nprecision = "fp16"\n')
    with pytest.raises(ConfigError, match="model.precision"):
        load_settings(config)
    config.write_text("[model]\nquantize = true\n")
    assert load_settings(config).model.requested_precision == "int8"
    config.write_text("")
    assert load_settings(config).model.requested_precision == "auto"


def test_example_config_is_valid():
    result = cli("-c", str(REPO / "config" / "warningshot.example.toml"), "check-config",
                 env={"WARNINGSHOT_MAILBOX_SUPPORT_PASSWORD": "a-real-secret"})
    assert result.returncode == 0, result.stderr


def test_scan_writes_one_json_line_per_message(tmp_path):
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "a.eml").write_bytes(make_mail(1, body="fine, thanks"))
    (tmp_path / "mail" / "b.eml").write_bytes(make_mail(2, body="pay up [[extortion]] or else"))
    config = tmp_path / "c.toml"
    config.write_text(MARKER_CONFIG)
    out = tmp_path / "preds.jsonl"
    result = cli("-c", str(config), "scan", str(tmp_path / "mail"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(line["id"]).name for line in lines] == ["a.eml", "b.eml"]
    assert {"id", "language", "scores", "labels", "decision", "evidence"} <= set(lines[0])
    assert set(lines[0]["scores"]) == {"abusive", "extortion", "legal_threat"}
    assert lines[0]["labels"] == [] and lines[1]["labels"] == ["extortion"]
    assert "Extortion" in lines[1]["decision"]["keywords"]
    assert "[[extortion]]" in lines[1]["evidence"]["extortion"]


def test_scan_reports_unreadable_files_and_still_scans_the_rest(tmp_path):
    good = tmp_path / "good.eml"
    good.write_bytes(make_mail(1))
    config = tmp_path / "c.toml"
    config.write_text(MARKER_CONFIG)
    result = cli("-c", str(config), "scan", str(good), str(tmp_path / "empty.eml"))
    assert result.returncode == 2  # click: a path that does not exist is a usage error
    (tmp_path / "empty.eml").write_bytes(b"")
    result = cli("-c", str(config), "scan", str(good), str(tmp_path / "empty.eml"))
    assert result.returncode == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "error" not in lines[0] and "error" in lines[1]
    assert "could not be read" in result.stderr


def test_scan_of_the_hostile_corpus_never_crashes(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(MARKER_CONFIG)
    corpus = REPO / "tests" / "data" / "eml"
    result = cli("-c", str(config), "scan", str(corpus), "--no-progress")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(list(corpus.glob("*.eml"))) >= 30
    assert all("scores" in line for line in lines), [line for line in lines if "error" in line]
