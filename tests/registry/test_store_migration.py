"""A registry database made before models had a task and facts opens, and its models are "infer"."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from mlos_registry.domain import GENERATE, INFER, ModelVersion, ServingConfig, TensorSpec
from mlos_registry.store import MetadataStore

# The schema as released before task/facts (services/registry/mlos_registry/store.py at f4306eb).
OLD_SCHEMA = """
CREATE TABLE model_counters (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
CREATE TABLE model_versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, format TEXT NOT NULL, sha256 TEXT NOT NULL,
    size_bytes INTEGER NOT NULL, inputs_json TEXT NOT NULL, outputs_json TEXT NOT NULL,
    config_json TEXT NOT NULL, labels_json TEXT NOT NULL, created_unix_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_sha256 ON model_versions (sha256);
"""
OLD_CONFIG = {"max_batch_size": 8, "max_queue_delay_us": 0, "instance_count": 1, "device": "auto",
              "default_timeout_us": 0, "default_priority": 0, "priority_levels": 0, "preferred_batch_sizes": []}


def _old_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SCHEMA)
    conn.execute("INSERT INTO model_counters VALUES ('iris', 1)")
    conn.execute(
        "INSERT INTO model_versions VALUES ('iris', 1, 'onnx', ?, 10, ?, ?, ?, '{}', 123)",
        ("a" * 64, json.dumps([{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]),
         json.dumps([{"name": "label", "datatype": "INT64", "shape": [-1]}]), json.dumps(OLD_CONFIG)),
    )
    conn.commit()
    conn.close()


async def test_an_old_database_opens_with_task_infer(tmp_path: Path) -> None:
    db = tmp_path / "registry.sqlite3"
    _old_database(db)
    store = MetadataStore(db)
    await store.open()
    try:
        old = await store.get("iris")
        assert old is not None
        assert (old.task, old.facts, old.config) == (INFER, {}, ServingConfig(max_batch_size=8, instance_count=1,
                                                                               device="auto"))
        assert old.inputs == (TensorSpec("X", "FP32", (-1, 4)),)
        fresh = ModelVersion(name="llm", version=0, format="gguf", sha256="b" * 64, size_bytes=5, inputs=(),
                             outputs=(), config=ServingConfig(context_length=2048, contexts=2), task=GENERATE,
                             facts={"architecture": "llama"})
        added, created = await store.add_version(fresh)
        assert created and await store.get("llm") == added
        assert (added.task, added.facts) == (GENERATE, {"architecture": "llama"})
    finally:
        await store.close()
    columns = {row[1] for row in sqlite3.connect(db).execute("PRAGMA table_info(model_versions)")}
    assert {"task", "facts_json"} <= columns
