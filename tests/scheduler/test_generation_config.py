"""What a client sees of a generation model's metadata and config: Triton's LLM-backend shape,
checked by decoding our bytes with tritonclient's own generated protos (in a child process: both
cannot live in one)."""

from __future__ import annotations

import json
import subprocess
import sys

from text_testkit import llama

from mlos.inference import grpc_service_pb2 as pb
from mlos_scheduler.convert import model_config, model_metadata

FACTS = (("architecture", "llama"), ("context_length", "2048"), ("quantization", "F32"))

TRITON_DECODE = """
import json, sys
from tritonclient.grpc import service_pb2, model_config_pb2
reply = service_pb2.ModelConfigResponse.FromString(sys.stdin.buffer.read())
c = reply.config
print(json.dumps({
    "decoupled": c.model_transaction_policy.decoupled,
    "platform": c.platform, "backend": c.backend, "max_batch_size": c.max_batch_size,
    "inputs": [[i.name, model_config_pb2.DataType.Name(i.data_type), list(i.dims), i.optional] for i in c.input],
    "outputs": [[o.name, model_config_pb2.DataType.Name(o.data_type), list(o.dims)] for o in c.output],
    "parameters": {k: v.string_value for k, v in c.parameters.items()},
}))
"""


def test_tritonclient_sees_a_decoupled_llm_config() -> None:
    reply = pb.ModelConfigResponse(config=model_config(llama(facts=FACTS)))
    done = subprocess.run([sys.executable, "-c", TRITON_DECODE], input=reply.SerializeToString(),
                          capture_output=True, check=True, timeout=60)
    seen = json.loads(done.stdout)
    assert seen == {
        "decoupled": True, "platform": "llama_cpp_gguf", "backend": "llamacpp", "max_batch_size": 0,
        "inputs": [["text_input", "TYPE_STRING", [1], False], ["stream", "TYPE_BOOL", [1], True],
                   ["sampling_parameters", "TYPE_STRING", [1], True]],
        "outputs": [["text_output", "TYPE_STRING", [-1]]],
        "parameters": dict(FACTS),
    }


def test_metadata_shows_the_text_signature() -> None:
    meta = model_metadata(llama(facts=FACTS))
    assert meta.platform == "llama_cpp_gguf" and list(meta.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("text_input", "BYTES", [1]), ("stream", "BOOL", [1]), ("sampling_parameters", "BYTES", [1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("text_output", "BYTES", [-1])]


def test_tensor_models_are_not_decoupled() -> None:
    config = model_config(llama(task="embed"))
    assert not config.model_transaction_policy.decoupled
    assert config.backend == "llamacpp"
    assert [(i.name, list(i.dims), i.optional) for i in config.input] == [("text_input", [1], False)]  # its own signature
