"""The azure_blob state backend against a real Azurite (tests/azurite_server.py): conditional writes, versions,
the lease lock and force-unlock, a read-only SAS, bad credentials, a missing container, migration. The CLI runs
in subprocesses with the credential variables the tests give it (never the caller's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from mlctl.errors import MlctlError
from mlctl.state.azureblob import AzureBlobBackend
from mlctl.state.statefile import read_state, write_state

ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: shared
auth_mode: key
"""


def env_with(**variables) -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")} | variables


def mlctl(root, *args, env):
    return subprocess.run(
        [sys.executable, "-m", "mlctl.cli", "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def box(azurite):
    """A fresh container of the session's Azurite: (azurite, container name)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    azurite.service().create_container(name)
    return azurite, name


def backend(azurite, container, name="team/state.json"):
    settings = {"container": container, "name": name, "lease_seconds": 15}
    return AzureBlobBackend(settings, "x", environ={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string})


def project(root, container, name="team/state.json", account_url=None):
    root.mkdir(parents=True, exist_ok=True)
    (root / "endpoint.yml").write_text(ENDPOINT)
    lines = ["state:", "  backend: azure_blob", f"  container: {container}", f"  name: {name}", "  lease_seconds: 15"]
    if account_url:
        lines.append(f"  account_url: {account_url}")
    (root / "mlctl.yaml").write_text("\n".join(lines) + "\n")
    return root


def test_a_write_conditional_on_a_stale_etag_is_refused_and_changes_nothing(box):
    azurite, container = box
    b = backend(azurite, container)
    write_state(b, read_state(b))
    first, second = read_state(b), read_state(b)
    write_state(b, first)
    with pytest.raises(MlctlError, match="the state changed since it was read"):
        write_state(b, second)
    assert read_state(b).serial == 2
    # even with a serial that would pass the serial check: the ETag decides (no lost update)
    third, fourth = read_state(b), read_state(b)
    write_state(b, third)
    fourth.serial += 5
    with pytest.raises(MlctlError, match="changed since it was read"):
        write_state(b, fourth)
    assert read_state(b).serial == 3
    # a first write never replaces a document another writer created meanwhile
    fresh_a, fresh_b = backend(azurite, container, "new.json"), backend(azurite, container, "new.json")
    a, c = read_state(fresh_a), read_state(fresh_b)
    write_state(fresh_a, a)
    with pytest.raises(MlctlError, match="another lineage"):
        write_state(fresh_b, c)


def test_every_write_is_kept_listed_and_readable(box, tmp_path):
    azurite, container = box
    b = backend(azurite, container)
    state = read_state(b)
    for _ in range(3):
        state = write_state(b, state)
    env = env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    root = project(tmp_path / "p", container)
    listed = mlctl(root, "state", "versions", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["1", "2", "3"]
    for serial in (1, 2, 3):
        pulled = mlctl(root, "state", "pull", "--serial", str(serial), env=env)
        assert json.loads(pulled.stdout)["serial"] == serial and json.loads(pulled.stdout)["lineage"] == state.lineage
    missing = mlctl(root, "state", "pull", "--serial", "9", env=env)
    assert missing.returncode == 1 and "no state version with serial 9" in missing.stderr


HOLDER = textwrap.dedent("""
    import sys
    from mlctl.state.azureblob import AzureBlobBackend
    b = AzureBlobBackend({"container": sys.argv[1], "name": "team/state.json", "lease_seconds": 15}, "x")
    with b.lock("apply") as me:
        print(me.id, flush=True)
        sys.stdin.readline()
""")


def test_a_held_lock_names_its_holder_and_force_unlock_breaks_it(box, tmp_path):
    azurite, container = box
    env = env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, container], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        lock_id = holder.stdout.readline().strip()
        root = project(tmp_path / "p", container)
        locked = mlctl(root, "apply", "--auto-approve", env=env)
        assert locked.returncode == 1
        assert f"pid {holder.pid} (operation 'apply', since " in locked.stderr and lock_id in locked.stderr
        assert f"mlctl state force-unlock {lock_id}" in locked.stderr
        wrong = mlctl(root, "state", "force-unlock", "not-the-id", env=env)
        assert wrong.returncode == 1 and "lock ID not-the-id is not the holder's" in wrong.stderr
        broken = mlctl(root, "state", "force-unlock", lock_id, env=env)
        assert broken.returncode == 0, broken.stderr
        assert f"the lock {lock_id} was held by " in broken.stdout and f"pid {holder.pid}" in broken.stdout
        assert backend(azurite, container).holder() is None
        with backend(azurite, container).lock("apply") as me:  # free at once, not after the lease
            assert me.id != lock_id
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)


def test_a_read_only_sas_plans_without_refresh_but_cannot_apply(box, tmp_path):
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas
    from azurite_server import ACCOUNT, KEY

    azurite, container = box
    b = backend(azurite, container)
    state = write_state(b, read_state(b))
    sas = generate_container_sas(
        ACCOUNT,
        container,
        account_key=KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    root = project(tmp_path / "p", container, account_url=azurite.url)
    env = env_with(AZURE_STORAGE_SAS_TOKEN=sas)
    plan = mlctl(root, "plan", "--refresh=false", "--detailed-exitcode", env=env)
    assert plan.returncode == 2, plan.stderr
    assert "endpoint.shared" in plan.stdout
    applied = mlctl(root, "apply", "--auto-approve", env=env)
    assert applied.returncode == 1 and "Traceback" not in applied.stderr
    assert "the credential from AZURE_STORAGE_SAS_TOKEN was refused" in applied.stderr
    assert f"container '{container}'" in applied.stderr and azurite.url in applied.stderr
    assert read_state(b).serial == state.serial and b.holder() is None  # nothing changed


def test_bad_credentials_and_a_missing_container_are_clear_errors_at_plan(box, tmp_path):
    azurite, container = box
    root = project(tmp_path / "p", container, account_url=azurite.url)
    bad = mlctl(root, "plan", env=env_with(AZURE_STORAGE_KEY="bm90IHRoZSBrZXk="))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    first = bad.stderr.splitlines()[0]
    assert first.startswith("Error: cannot ") and f"account {azurite.url}, container '{container}'" in first
    assert "the credential from AZURE_STORAGE_KEY was refused" in first
    root = project(tmp_path / "q", "no-such-container")
    missing = mlctl(root, "plan", env=env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string))
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "the container 'no-such-container' does not exist" in missing.stderr
    assert "credential from AZURE_STORAGE_CONNECTION_STRING" in missing.stderr
    assert azurite.service().get_container_client(container).list_blobs().next is not None
    assert [b.name for b in azurite.service().get_container_client(container).list_blobs()] == []
    not_there = mlctl(
        root,
        "plan",
        env=env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string.replace(str(azurite.port), "9")),
    )
    assert not_there.returncode == 1 and "the storage account did not answer" in not_there.stderr


def test_migration_from_local_to_blob_and_back(box, tmp_path):
    from mlctl.state.localfile import LocalBackend

    azurite, container = box
    env = env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    root = tmp_path / "p"
    root.mkdir()
    (root / "endpoint.yml").write_text(ENDPOINT)
    local = LocalBackend(root / ".mlctl" / "state.json")
    state = read_state(local)
    for _ in range(3):
        state = write_state(local, state)
    project(root, container)
    refused = mlctl(root, "plan", "--refresh=false", env=env)
    assert refused.returncode == 1 and "the state: block moved the state from the local state file" in refused.stderr
    moved = mlctl(root, "state", "migrate", env=env)
    assert moved.returncode == 0, moved.stderr
    assert "Copied serial 3" in moved.stdout
    blob = read_state(backend(azurite, container))
    assert (blob.lineage, blob.serial) == (state.lineage, 3)
    assert mlctl(root, "plan", "--refresh=false", env=env).returncode == 0
    write_state(backend(azurite, container), blob)  # the team writes on: serial 4 in the blob
    (root / "mlctl.yaml").unlink()
    refused = mlctl(root, "plan", "--refresh=false", env=env)
    assert refused.returncode == 1 and "to the local state file" in refused.stderr
    back = mlctl(root, "state", "migrate", env=env)
    assert back.returncode == 0, back.stderr
    assert (read_state(local).lineage, read_state(local).serial) == (state.lineage, 4)
    assert mlctl(root, "plan", "--refresh=false", env=env).returncode == 0
    # a target holding another project's state is refused, and nothing is copied
    other = backend(azurite, container, "other.json")
    write_state(other, read_state(other))
    project(root, container, name="other.json")
    refused = mlctl(root, "state", "migrate", env=env)
    assert refused.returncode == 1 and "holds a state of another lineage" in refused.stderr
    assert read_state(other).serial == 1


def test_an_sdk_error_never_prints_a_sas_signature_or_an_account_key():
    from mlctl.state.azureblob import _first_line

    text = "GET https://a.blob.core.windows.net/c/b?sv=2021-08-06&sig=abc%2Bdef&se=2030 AccountKey=c2VjcmV0;x"
    shown = _first_line(Exception(text + "\nmore"))
    assert "abc%2Bdef" not in shown and "c2VjcmV0" not in shown
    assert shown == "GET https://a.blob.core.windows.net/c/b?sv=2021-08-06&sig=***&se=2030 AccountKey=***;x"


def test_a_state_file_given_with_a_shared_state_is_a_clear_error(tmp_path):
    """--state FILE is the local backend's option (Terraform's -state too): under azure_blob it is refused, never
    ignored, before any request (so without Azurite) and with nothing written."""
    root = project(tmp_path / "p", "team-state", account_url="http://127.0.0.1:9/devstoreaccount1")
    env = env_with(AZURE_STORAGE_KEY="a2V5")
    given = tmp_path / "elsewhere" / "state.json"
    for command in (["plan", "--refresh=false"], ["apply", "--auto-approve"], ["state", "list"]):
        ran = mlctl(root, "--state", str(given), *command, env=env)
        assert ran.returncode == 1 and "Traceback" not in ran.stderr, command
        first, where, todo = ran.stderr.splitlines()[:3]
        assert first == (
            f"Error: --state {given} names a local state file, but the state: block keeps the state in azure_blob "
            "(container 'team-state')"
        ), command
        assert where.strip() == f"at {root / 'mlctl.yaml'}, field 'state.backend'"
        assert "Leave out --state" in todo and "mlctl state push FILE" in todo
    assert not given.parent.exists() and not (root / ".mlctl").exists()  # nothing written anywhere


def test_a_folder_without_configuration_plans_deleting_what_the_shared_state_records(box, tmp_path):
    """Discovery's "was anything applied here" asks the state's store, not the local folder: a checkout whose YAML
    was all deleted (a pull request) plans deleting what the shared state records; a shared state that holds
    nothing yet leaves "no configuration found" an error."""
    from mlctl.projectpaths import Project
    from mlctl.schemas.load import load_config
    from mlctl.state.statefile import ResourceState

    azurite, container = box
    env = env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    applied = project(tmp_path / "applied", container)
    b = backend(azurite, container)
    state = read_state(b)
    for r in load_config(Project.at(applied)).resources:
        state.resources[r.address] = ResourceState.from_resource(r)
    write_state(b, state)
    checkout = project(tmp_path / "checkout", container)  # another machine: nothing local but the project file
    (checkout / "endpoint.yml").unlink()
    plan = mlctl(checkout, "plan", "--refresh=false", "--detailed-exitcode", env=env)
    assert plan.returncode == 2, plan.stderr
    assert plan.stderr.startswith(f"Warning: no configuration found in {checkout}: planning with an empty ")
    recorded = len(state.resources)
    assert recorded >= 1
    assert plan.stdout.rstrip().splitlines()[-1] == f"Plan: 0 to add, 0 to change, 0 to replace, {recorded} to destroy."
    fresh = project(tmp_path / "fresh", container, name="nothing-yet.json")
    (fresh / "endpoint.yml").unlink()
    empty = mlctl(fresh, "plan", "--refresh=false", env=env)
    assert empty.returncode == 1 and empty.stderr.startswith(f"Error: no configuration found in {fresh}\n")


def test_with_no_credential_variable_default_azure_credential_fails_clearly(tmp_path):
    """DefaultAzureCredential cannot sign in here (no Entra ID: docs/state.md); what is tested is that its failure,
    and an http:// account_url it cannot use, are one clear error each: no traceback, no page of SDK log lines."""
    env = env_with()
    http = project(tmp_path / "http", "team-state", account_url="http://127.0.0.1:9/devstoreaccount1")
    ran = mlctl(http, "plan", "--refresh=false", env=env)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.startswith(
        "Error: cannot use DefaultAzureCredential (none of AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_SAS_TOKEN, "
        "AZURE_STORAGE_KEY is set) with account_url http://127.0.0.1:9/devstoreaccount1"
    )
    assert "needs an https:// account_url" in ran.stderr
    https = project(tmp_path / "https", "team-state", account_url="https://127.0.0.1:9/devstoreaccount1")
    ran = mlctl(https, "plan", "--refresh=false", env=env)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr
    assert ran.stderr.startswith("Error: cannot read the state in Azure Blob Storage (account https://127.0.0.1:9/")
    assert "was refused (DefaultAzureCredential failed to retrieve a token" in ran.stderr
    assert "Sign in for DefaultAzureCredential (`az login`" in ran.stderr
    assert "Attempted credentials" not in ran.stderr and len(ran.stderr.splitlines()) == 3


def test_the_blob_is_named_after_the_project_folder_unless_name_is_given(box, tmp_path):
    from mlctl.state.localfile import LocalBackend

    azurite, container = box
    env = env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    local = LocalBackend(tmp_path / "elsewhere" / "state.json")
    written = write_state(local, read_state(local))
    root = tmp_path / "churn-model"
    root.mkdir()
    (root / "endpoint.yml").write_text(ENDPOINT)
    (root / "mlctl.yaml").write_text(f"state:\n  backend: azure_blob\n  container: {container}\n")
    pushed = mlctl(root, "state", "push", str(tmp_path / "elsewhere" / "state.json"), env=env)
    assert pushed.returncode == 0, pushed.stderr
    blob = backend(azurite, container, name="churn-model.mlctl-state.json")
    assert read_state(blob).lineage == written.lineage


def test_a_plan_without_refresh_is_kept_and_printed_again_until_the_shared_state_changes(box, tmp_path):
    """The plan memo (mlctl.reconciler.planmemo) keys a shared state by its content as it keys the local file: an
    unchanged blob prints the kept plan again (the memo file is not rewritten); another writer's write makes the
    plan again from the new state."""
    import time

    azurite, container = box
    env = env_with(AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    root = project(tmp_path / "p", container)
    memo = root / ".mlctl" / "lastplan.json"

    def stamp():
        st = memo.stat()
        return st.st_ino, st.st_mtime_ns

    time.sleep(1.1)  # a plan made within a second of a change to its inputs is not kept
    first = mlctl(root, "plan", "--refresh=false", env=env)
    assert first.returncode == 0 and "endpoint.shared" in first.stdout, first.stderr
    kept = stamp()
    again = mlctl(root, "plan", "--refresh=false", env=env)
    assert (again.returncode, again.stdout, again.stderr) == (first.returncode, first.stdout, first.stderr)
    assert stamp() == kept  # printed from the memo
    from mlctl.projectpaths import Project
    from mlctl.schemas.load import load_config
    from mlctl.state.statefile import ResourceState

    b = backend(azurite, container)
    state = read_state(b)
    for r in load_config(Project.at(root)).resources:
        state.resources[r.address] = ResourceState.from_resource(r)
    write_state(b, state)  # another machine applied it
    time.sleep(1.1)
    after = mlctl(root, "plan", "--refresh=false", "--detailed-exitcode", env=env)
    assert after.returncode == 0 and after.stdout != first.stdout, after.stderr
    assert "No changes" in after.stdout and stamp() != kept
