"""PyTorch -> simplified ONNX with metadata_props."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch

from .graphs import SIGNATURES, WRAPPERS, example_inputs
from .network import MixFormerV2

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(model: MixFormerV2, role: str, path: Path, metadata: dict[str, str], simplify: bool = True) -> Path:
    """Trace graph ``role`` to ``path`` (opset 17, dynamic batch), simplify it with onnxsim and
    embed ``metadata`` as metadata_props."""
    inputs, outputs = SIGNATURES[role]
    feeds = example_inputs(model, role)
    dynamic = {name: {0: "batch"} for name in (*inputs, *outputs)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(WRAPPERS[role](model).eval(), tuple(feeds[n] for n in inputs), str(path),
                          input_names=list(inputs), output_names=list(outputs), dynamic_axes=dynamic,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    proto = onnx.load(str(path))
    if simplify:
        import onnxsim

        proto, ok = onnxsim.simplify(proto)
        if not ok:
            raise RuntimeError(f"onnxsim could not validate the simplified {role} graph")
    del proto.metadata_props[:]
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    log.info("wrote %s", path)
    return path
