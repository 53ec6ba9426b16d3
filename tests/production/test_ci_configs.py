"""The CI recipe (configs/ci/): both pipelines parse, run the promotion steps in order, keep
the JSON summaries as artifacts, and agree with each other and with TF Serving's config.

The step script itself is exercised here on what needs no model (usage, a first
promotion's diff, a publish without a candidate); tests/production/test_ci_recipe.py runs
the whole recipe on real exports.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml
from google.protobuf import text_format
from tensorflow_serving.config.model_server_config_pb2 import ModelServerConfig

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "configs" / "ci"
SCRIPT = CI / "promote.sh"
STEPS = ["export", "verify", "diff", "publish"]


def load(name: str) -> dict:
    return yaml.safe_load((CI / name).read_text())


def promote_step(command: str) -> str | None:
    words = command.split()
    if len(words) == 3 and words[:2] == ["bash", "configs/ci/promote.sh"]:
        return words[2]
    return None


def github_steps() -> list[dict]:
    return load("github-actions.yml")["jobs"]["promote"]["steps"]


def test_github_workflow_runs_the_steps_in_order_and_uploads_the_summaries_always():
    workflow = load("github-actions.yml")
    # YAML 1.1 reads the bare key `on` as True; GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    assert "workflow_dispatch" in triggers and "push" in triggers
    steps = github_steps()
    ran = [promote_step(s["run"]) for s in steps if "run" in s and promote_step(s["run"])]
    assert ran == STEPS
    publish = next(s for s in steps if "run" in s and promote_step(s["run"]) == "publish")
    assert publish["if"] == "github.ref == 'refs/heads/main'"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert upload["with"]["path"].rstrip("/") == workflow["env"]["ARTIFACTS"]
    # The upload comes after every step whose summary it carries.
    assert steps.index(upload) > steps.index(publish)
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_gitlab_job_runs_one_stage_per_step_with_summaries_kept_always():
    pipeline = load("gitlab-ci.yml")
    assert pipeline["stages"] == STEPS
    template = pipeline[".promote"]
    assert template["artifacts"]["when"] == "always"
    assert pipeline["variables"]["ARTIFACTS"] + "/" in template["artifacts"]["paths"]
    assert pipeline["variables"]["CANDIDATE"] + "/" in template["artifacts"]["paths"]
    for index, step in enumerate(STEPS):
        job = pipeline[step]
        assert job["extends"] == ".promote" and job["stage"] == step
        assert [promote_step(line) for line in job["script"]] == [step]
        assert set(job.get("needs", [])) == set(STEPS[:index]), step
    assert pipeline["publish"]["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert "resource_group" in pipeline["publish"]


def test_both_pipelines_share_settings_and_publish_where_tf_serving_reads():
    github = load("github-actions.yml")["env"]
    gitlab = load("gitlab-ci.yml")["variables"]
    assert github == gitlab
    served = text_format.Parse((REPO / "configs" / "models.config").read_text(), ModelServerConfig())
    assert gitlab["MODEL_BASE_PATH"] == served.model_config_list.config[0].base_path
    script = SCRIPT.read_text()
    assert f'ARTIFACTS="${{ARTIFACTS:-{gitlab["ARTIFACTS"]}}}"' in script
    assert f'CANDIDATE="${{CANDIDATE:-{gitlab["CANDIDATE"]}}}"' in script


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **env}, cwd=env.get("CWD", REPO),
    )


def test_script_is_valid_bash_and_refuses_bad_usage(tmp_path):
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0
    wrong = run("deploy", MODEL_BASE_PATH=str(tmp_path), ARTIFACTS=str(tmp_path / "ci"))
    assert wrong.returncode == 2 and "unknown step 'deploy'" in wrong.stderr
    unset = subprocess.run(["bash", str(SCRIPT), "diff"], capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "MODEL_BASE_PATH"})
    assert unset.returncode != 0 and "MODEL_BASE_PATH" in unset.stderr


def test_first_promotion_has_nothing_to_diff_and_publish_needs_a_candidate(tmp_path):
    base, artifacts = tmp_path / "models" / "mnist", tmp_path / "ci"
    first = run("diff", MODEL_BASE_PATH=str(base), ARTIFACTS=str(artifacts))
    assert first.returncode == 0, first.stderr
    assert json.loads((artifacts / "diff.json").read_text())["skipped"] == "no serving version yet"
    orphan = run("publish", MODEL_BASE_PATH=str(base), ARTIFACTS=str(artifacts))
    assert orphan.returncode == 1 and "run the export step first" in orphan.stderr
    assert not base.exists()
