"""Writes a copy of a GGUF model with every quantised weight dequantised to F16, so that the
original can serve as the copy's draft model in `ember bench speculative --draft-model`.

No two real models with one vocabulary are available offline; the same weights at two
precisions are the pair at hand. The copy computes the original's function in F16 (three times
the bytes of a Q4_1 file), so the draft's guesses are taken far more often than a smaller
model's would be: this measures the draft-model path's cost and its best case, not the gain of a
real pair.

    python bench/make_draft_pair.py ~/.cache/ember/models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smollm2-f16.gguf
    ember bench speculative --model /tmp/smollm2-f16.gguf \
        --draft-model ~/.cache/ember/models/SmolLM2-135M-Instruct.Q4_1.gguf --chat

Uses the `gguf` package (llama.cpp's reader, writer and numpy dequantisers; scripts/install-deps.sh
installs it).
"""
import argparse

import gguf
import numpy as np


# Keys the writer sets itself: the architecture (at construction), the alignment (the padding it
# writes) and the file type (the copy is F16 whatever the original was).
OWN_KEYS = ("general.architecture", "general.alignment", "general.file_type")


def copy_fields(reader, writer):
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key in OWN_KEYS:
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            sub = field.types[1]
            if sub == gguf.GGUFValueType.STRING:
                values = [bytes(field.parts[i]).decode("utf-8", "surrogateescape") for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(key, values, kind, sub_type=sub)
        elif kind == gguf.GGUFValueType.STRING:
            writer.add_key_value(key, bytes(field.parts[field.data[0]]).decode("utf-8", "surrogateescape"), kind)
        else:
            writer.add_key_value(key, field.parts[field.data[0]].tolist()[0], kind)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source")
    ap.add_argument("out")
    a = ap.parse_args()
    reader = gguf.GGUFReader(a.source)
    arch = reader.fields["general.architecture"]
    writer = gguf.GGUFWriter(a.out, bytes(arch.parts[arch.data[0]]).decode())
    alignment = reader.fields.get("general.alignment")
    if alignment is not None:
        writer.add_custom_alignment(int(alignment.parts[alignment.data[0]][0]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    copy_fields(reader, writer)
    plain = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    for t in reader.tensors:
        if t.tensor_type in plain:  # norms and biases stay as they are
            writer.add_tensor(t.name, np.ascontiguousarray(t.data))
        else:  # [rows, cols] of floats, as F16
            values = gguf.quants.dequantize(t.data, t.tensor_type)
            writer.add_tensor(t.name, np.ascontiguousarray(values.astype(np.float16)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
