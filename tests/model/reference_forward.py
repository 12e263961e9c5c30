"""An independent float64 forward pass in numpy for the real models (llama and gemma3), over
weights dequantised by the gguf package: the reference for ember's logits on SmolLM2 and
Gemma 3, whose files carry no reference logits. Plain and slow on purpose (a few seconds for a
short prompt)."""
import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


class Model:
    def __init__(self, path):
        self.reader = GGUFReader(path)
        self.fields = {k: f for k, f in self.reader.fields.items()}
        self.tensors = {t.name: t for t in self.reader.tensors}
        self.arch = self.value("general.architecture")
        a = self.arch
        self.n_embd = self.value(f"{a}.embedding_length")
        self.n_layer = self.value(f"{a}.block_count")
        self.n_head = self.value(f"{a}.attention.head_count")
        self.n_head_kv = self.value(f"{a}.attention.head_count_kv", self.n_head)
        self.head_dim = self.value(f"{a}.attention.key_length", self.n_embd // self.n_head)
        self.eps = self.value(f"{a}.attention.layer_norm_rms_epsilon", 1e-5)
        self.rope_base = self.value(f"{a}.rope.freq_base", 10000.0)
        self.window = self.value(f"{a}.attention.sliding_window", 0) if a == "gemma3" else 0
        self.cache = {}

    def value(self, key, default=None):
        f = self.fields.get(key)
        if f is None:
            return default
        if len(f.types) == 1 and f.types[0].name == "STRING":
            return bytes(f.parts[-1]).decode()
        return f.parts[-1].tolist()[0]

    def w(self, name):
        """The tensor as float64 with numpy shape (rows, cols) = (n_out, n_in)."""
        if name not in self.cache:
            t = self.tensors[name]
            data = dequantize(t.data, t.tensor_type).astype(np.float64)
            shape = [int(d) for d in t.shape][::-1]
            self.cache[name] = data.reshape(shape)
        return self.cache[name]

    def has(self, name):
        return name in self.tensors


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, positions, base, neox):
    """x: (tokens, heads, head_dim), rotating all head_dim dimensions."""
    d = x.shape[-1]
    inv = base ** (-np.arange(0, d, 2) / d)
    angles = positions[:, None] * inv[None, :]
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    out = x.copy()
    if neox:
        a, b = x[..., : d // 2], x[..., d // 2:]
        out[..., : d // 2] = a * cos - b * sin
        out[..., d // 2:] = a * sin + b * cos
    else:
        a, b = x[..., 0::2], x[..., 1::2]
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
    return out


def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def forward(m, tokens):
    """Logits of every position, (len(tokens), n_vocab)."""
    gemma = m.arch == "gemma3"
    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)
    x = m.w("token_embd.weight")[tokens].copy()
    if gemma:
        x *= np.sqrt(m.n_embd)
    group = m.n_head // m.n_head_kv
    for l in range(m.n_layer):
        p = f"blk.{l}."
        h = rms_norm(x, m.w(p + "attn_norm.weight"), m.eps)
        q = (h @ m.w(p + "attn_q.weight").T).reshape(n, m.n_head, m.head_dim)
        k = (h @ m.w(p + "attn_k.weight").T).reshape(n, m.n_head_kv, m.head_dim)
        v = (h @ m.w(p + "attn_v.weight").T).reshape(n, m.n_head_kv, m.head_dim)
        local = gemma and l % 6 < 5
        if gemma:
            q = rms_norm(q, m.w(p + "attn_q_norm.weight"), m.eps)
            k = rms_norm(k, m.w(p + "attn_k_norm.weight"), m.eps)
        base = 10000.0 if local else m.rope_base
        q, k = rope(q, pos, base, gemma), rope(k, pos, base, gemma)
        out = np.zeros((n, m.n_head, m.head_dim))
        for hh in range(m.n_head):
            g = hh // group
            scores = q[:, hh, :] @ k[:, g, :].T / np.sqrt(m.head_dim)
            mask = np.tril(np.ones((n, n), dtype=bool))
            if local and m.window:
                mask &= ~np.tril(np.ones((n, n), dtype=bool), -m.window)
            scores = np.where(mask, scores, -np.inf)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            out[:, hh, :] = scores @ v[:, g, :]
        o = out.reshape(n, -1) @ m.w(p + "attn_output.weight").T
        if gemma:
            o = rms_norm(o, m.w(p + "post_attention_norm.weight"), m.eps)
        x = x + o
        h = rms_norm(x, m.w(p + "ffn_norm.weight"), m.eps)
        gate, up = h @ m.w(p + "ffn_gate.weight").T, h @ m.w(p + "ffn_up.weight").T
        act = gelu_tanh(gate) if gemma else gate / (1 + np.exp(-gate))
        f = (act * up) @ m.w(p + "ffn_down.weight").T
        if gemma:
            f = rms_norm(f, m.w(p + "post_ffw_norm.weight"), m.eps)
        x = x + f
    x = rms_norm(x, m.w("output_norm.weight"), m.eps)
    out_w = m.w("output.weight") if m.has("output.weight") else m.w("token_embd.weight")
    return x @ out_w.T
