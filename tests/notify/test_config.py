"""The channels file: a good one loads; a bad one names the file, the line, the field and what
is allowed, and never echoes a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.notify.conftest import write_config
from tripwire.cli import app
from tripwire.errors import NotifyConfigError
from tripwire.notify.config import (
    EmailChannel,
    SlackChannel,
    WebhookChannel,
    load_notify_config,
)
from tripwire.settings import Settings

GOOD = """\
schema_version: 1
channels:
  safety-team:
    type: slack
    url_env: TRIPWIRE_SLACK_SAFETY_URL
  audit-log:
    type: webhook
    url: https://audit.example.org/tripwire
    secret_env: TRIPWIRE_AUDIT_HOOK_SECRET
  oncall:
    type: email
    host: smtp.example.org
    port: 587
    tls: starttls
    user_env: TRIPWIRE_SMTP_USER
    password_env: TRIPWIRE_SMTP_PASSWORD
    from: tripwire@example.org
    to: [oncall@example.org]
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = write_config(tmp_path, text)
    with pytest.raises(NotifyConfigError) as caught:
        load_notify_config(path)
    assert str(caught.value).startswith(f"{path}: invalid")
    return caught.value.problems


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = load_notify_config(write_config(tmp_path, GOOD))
    slack, hook, mail = (config.channels[n] for n in ("safety-team", "audit-log", "oncall"))
    assert isinstance(slack, SlackChannel) and slack.url_env == "TRIPWIRE_SLACK_SAFETY_URL"
    assert isinstance(hook, WebhookChannel) and hook.timeout_s == 10
    assert isinstance(mail, EmailChannel) and mail.from_ == "tripwire@example.org"
    assert mail.tls == "starttls" and mail.to == ["oncall@example.org"]
    docs = Path(__file__).parents[2] / "docs" / "operations.md"
    assert GOOD in docs.read_text(), "docs/operations.md shows this example"


def test_an_unknown_channel_type_names_the_allowed_ones(tmp_path: Path) -> None:
    (problem,) = _problems(tmp_path, "channels:\n  ops:\n    type: sms\n    to: x\n")
    assert problem.startswith("line 2: channels.ops: ")
    assert "'sms'" in problem and "'slack', 'webhook', 'email'" in problem


def test_field_errors_name_the_line_and_the_field(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path,
        """\
channels:
  hook:
    type: webhook
    url: ftp://audit.example.org
    secret_env: 1BAD
    timeout_s: 0
  mail:
    type: email
    host: smtp.example.org
    from: nobody
    user_env: SMTP_USER
    to: []
  bad name:
    type: slack
    url_env: SLACK
""",
    )
    assert sorted(problems, key=lambda p: int(p.split(":")[0].split()[1])) == [
        "line 4: channels.hook.url: Value error, not an http:// or https:// URL "
        "(got 'ftp://audit.example.org')",
        "line 5: channels.hook.secret_env: Value error, not an environment variable name "
        "(letters, digits and _, not starting with a digit) (got '1BAD')",
        "line 6: channels.hook.timeout_s: Input should be greater than 0 (got 0)",
        "line 10: channels.mail.from: Value error, not an email address (name@domain) "
        "(got 'nobody')",
        "line 12: channels.mail.to: List should have at least 1 item after validation, not 0 "
        "(got [])",
        "line 13: channels.bad name.[key]: Value error, not a channel name (letters, digits, "
        "'.', '_' and '-', starting with a letter or digit) (got 'bad name')",
    ]


def test_a_login_needs_both_variables(tmp_path: Path) -> None:
    (problem,) = _problems(
        tmp_path,
        "channels:\n  mail:\n    type: email\n    host: h\n    from: a@b\n    to: [c@d]\n"
        "    user_env: SMTP_USER\n",
    )
    assert problem == (
        "line 2: channels.mail: Value error, give both user_env and password_env, or neither "
        "(no login)"
    )


@pytest.mark.parametrize(
    ("channel", "field", "instead"),
    [
        ("type: webhook\n    url: https://x.org\n    secret_env: S", "secret", "secret_env"),
        ("type: slack\n    url_env: S", "url", "url_env"),
        ("type: email\n    host: h\n    from: a@b\n    to: [c@d]", "password", "password_env"),
    ],
)
def test_a_secret_written_into_the_file_is_refused_without_echoing_it(
    tmp_path: Path, channel: str, field: str, instead: str
) -> None:
    text = f"channels:\n  c:\n    {channel}\n    {field}: hunter2-very-secret\n"
    (problem,) = _problems(tmp_path, text)
    assert problem == (
        f"line 2: channels.c: Value error, {field}: secrets are not kept in this file; put the "
        f"value in an environment variable and name that variable in {instead}"
    )


def test_unknown_fields_and_a_bad_schema_version_are_refused(tmp_path: Path) -> None:
    problems = _problems(
        tmp_path, "schema_version: 2\nchannels:\n  s:\n    type: slack\n    url_env: S\n    x: 1\n"
    )
    assert problems[0].startswith("line 1: schema_version: Input should be 1")
    assert problems[1] == "line 6: channels.s.x: Extra inputs are not permitted (got 1)"


def test_failure_channels_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIPWIRE_NOTIFY_FAILURES", "ops, safety-team,")
    monkeypatch.setenv("TRIPWIRE_REVIEW_OVERDUE_H", "12")
    settings = Settings(_env_file=None)
    assert settings.notify_failures == ["ops", "safety-team"]
    assert settings.review_overdue_h == 12 and settings.notify_config is None


def test_the_cli_prints_a_bad_file_in_a_few_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "channels:\n  ops:\n    type: sms\n")
    monkeypatch.setenv("TRIPWIRE_NOTIFY_CONFIG", str(path))
    monkeypatch.setenv("TRIPWIRE_DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = CliRunner().invoke(app, ["notify", "send", "--once"])
    assert result.exit_code == 2
    assert f"{path}: invalid" in result.output and "Traceback" not in result.output
    assert "line 2: channels.ops:" in result.output


def test_a_watcher_with_a_bad_channels_file_does_not_start(tmp_path: Path) -> None:
    from tripwire.jobs.service import Service

    path = write_config(tmp_path, "channels:\n  ops:\n    type: sms\n")
    settings = Settings(_env_file=None, home=tmp_path / "home", notify_config=path)
    with pytest.raises(NotifyConfigError, match=r"line 2: channels\.ops:"):
        Service(settings, [tmp_path])
