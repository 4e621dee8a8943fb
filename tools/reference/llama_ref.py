#!/usr/bin/env python3
"""
Independent plain-Python reference for the Llama / Qwen2 / Qwen3 decoder (the R1 distills, R1-0528-Qwen3-8B and
llama2.c models).

Written from the published semantics, not from the C# engine:
  * RMSNorm (Zhang & Sennrich 2019):           y = x / sqrt(mean(x^2) + eps) * w
  * grouped-query attention (Ainslie et al. 2023): query head h reads kv head h // (heads / kv_heads)
  * RoPE (Su et al. 2021), two layouts:
      - Hugging Face `rotate_half` (halves i, i + d/2)  for HF Llama / Qwen2 weights
      - interleaved pairs (2i, 2i+1)                    for llama2.c checkpoints (karpathy/llama2.c run.c)
  * Llama 3.1 rope scaling, HF transformers `_compute_llama3_parameters`
  * YaRN rope scaling, HF transformers `_compute_yarn_parameters` (frequency ramp between the beta_fast / beta_slow
    correction dims; cos and sin multiplied by the attention factor 0.1 ln(factor) + 1 unless `attention_factor` is set;
    Qwen3 configs' `attn_factor` key is not read by transformers, so not here either)
  * Qwen2 q/k/v biases; Qwen3 (HF modeling_qwen3.py) q_norm / k_norm: RMSNorm over each head_dim-wide head of q and k
    before the rope, head_dim from the config (may differ from hidden / heads)
  * SwiGLU MLP  down(silu(gate x) * up x), tied or untied output head.
All arithmetic is Python float (IEEE double), so the reference is more precise than any float32 engine.

Readers: llama2.c "legacy v0" checkpoints, Hugging Face safetensors (F32 / BF16 / F16) + config.json.
Generator: deterministic tiny random HF models (Python `random`, fixed seeds) plus reference logits.

Usage:
  python3 tools/reference/llama_ref.py gen-fixtures            # writes tests/fixtures/tiny-qwen2, tiny-llama3, tiny-qwen3, tiny-stories260K-reference
  python3 tools/reference/llama_ref.py logits MODEL --tokens 1,2,3 [--out FILE]   # MODEL: HF folder or llama2.c .bin
  python3 tools/reference/llama_ref.py greedy MODEL --tokens 1,2,3 -n 8
No numpy: only the standard library.
"""
import argparse
import array
import json
import math
import os
import random
import struct
import sys

# ----------------------------------------------------------------------------------------------------------------------
# Number formats

def f32_round(x):
    """Round a Python float to the nearest float32 value."""
    return struct.unpack('<f', struct.pack('<f', x))[0]


def bf16_bits(x):
    """float -> bfloat16 bits, round to nearest even (the upper 16 bits of the float32)."""
    (u,) = struct.unpack('<I', struct.pack('<f', x))
    if (u & 0x7F800000) == 0x7F800000:
        return (u >> 16) | (0x40 if (u & 0xFFFF) else 0)  # inf / nan
    rounding = 0x7FFF + ((u >> 16) & 1)
    return ((u + rounding) >> 16) & 0xFFFF


def bf16_to_float(b):
    return struct.unpack('<f', struct.pack('<I', (b & 0xFFFF) << 16))[0]


def bf16_round(x):
    return bf16_to_float(bf16_bits(x))


# ----------------------------------------------------------------------------------------------------------------------
# safetensors (huggingface/safetensors README "Format"): u64 LE header size N, N bytes JSON header, then the data.

_ST_SIZES = {'F32': 4, 'BF16': 2, 'F16': 2}


def read_safetensors(path):
    """Returns {name: (shape, [floats])}."""
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack_from('<Q', data, 0)
    header = json.loads(data[8:8 + n].decode('utf-8'))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        dtype, shape, (b, e) = info['dtype'], info['shape'], info['data_offsets']
        count = 1
        for d in shape:
            count *= d
        raw = data[base + b: base + e]
        if len(raw) != count * _ST_SIZES[dtype]:
            raise ValueError(f'{path}: tensor {name}: {len(raw)} bytes, expected {count * _ST_SIZES[dtype]}')
        if dtype == 'F32':
            vals = list(struct.unpack(f'<{count}f', raw))
        elif dtype == 'F16':
            vals = list(struct.unpack(f'<{count}e', raw))
        else:  # BF16
            vals = [bf16_to_float(h) for h in struct.unpack(f'<{count}H', raw)]
        out[name] = (list(shape), vals)
    return out


def write_safetensors(path, tensors, dtype='F32'):
    """tensors: {name: (shape, [floats])}; written in name order with the given dtype."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        shape, vals = tensors[name]
        if dtype == 'F32':
            raw = struct.pack(f'<{len(vals)}f', *vals)
        elif dtype == 'BF16':
            raw = struct.pack(f'<{len(vals)}H', *[bf16_bits(v) for v in vals])
        else:
            raise ValueError(dtype)
        header[name] = {'dtype': dtype, 'shape': list(shape), 'data_offsets': [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode('utf-8')
    h += b' ' * ((8 - len(h) % 8) % 8)  # the HF writer pads the header to a multiple of 8 with spaces
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


# ----------------------------------------------------------------------------------------------------------------------
# Model description

class Config:
    def __init__(self, **kw):
        self.hidden = kw['hidden']
        self.layers = kw['layers']
        self.heads = kw['heads']
        self.kv_heads = kw['kv_heads']
        self.head_dim = kw.get('head_dim') or self.hidden // self.heads
        self.ffn = kw['ffn']
        self.vocab = kw['vocab']
        self.eps = kw['eps']
        self.theta = kw['theta']
        self.rope_scaling = kw.get('rope_scaling')   # dict (HF) or None
        self.bias = kw.get('bias', False)
        self.tied = kw.get('tied', False)
        self.max_pos = kw.get('max_pos', 4096)
        self.interleaved = kw.get('interleaved', False)
        self.qk_norm = kw.get('qk_norm', False)


def config_from_hf(path):
    with open(path) as f:
        j = json.load(f)
    mt = j['model_type']
    if mt not in ('llama', 'qwen2', 'qwen3'):
        raise ValueError(f'{path}: model_type {mt} not supported by this reference')
    heads = j['num_attention_heads']
    rs = j.get('rope_scaling')
    if rs is not None and rs.get('rope_type', rs.get('type')) in (None, 'default'):
        rs = None
    return Config(hidden=j['hidden_size'], layers=j['num_hidden_layers'], heads=heads,
                  kv_heads=j.get('num_key_value_heads', heads), head_dim=j.get('head_dim'),
                  ffn=j['intermediate_size'], vocab=j['vocab_size'], eps=j['rms_norm_eps'],
                  theta=j.get('rope_theta', 10000.0), rope_scaling=rs, max_pos=j.get('max_position_embeddings', 4096),
                  bias=(mt == 'qwen2') or j.get('attention_bias', False),
                  tied=j.get('tie_word_embeddings', False), interleaved=False, qk_norm=(mt == 'qwen3'))


def load_hf(folder):
    cfg = config_from_hf(os.path.join(folder, 'config.json'))
    return cfg, read_safetensors(os.path.join(folder, 'model.safetensors'))


def load_llama2c(path):
    """karpathy/llama2.c run.c checkpoint (legacy version 0), renamed to HF tensor names."""
    with open(path, 'rb') as f:
        data = f.read()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack_from('<7i', data, 0)
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // heads
    kv_dim = kv_heads * hs
    floats = array.array('f')
    floats.frombytes(data[28:])
    if sys.byteorder != 'little':
        floats.byteswap()
    pos = [0]

    def take(n):
        v = floats[pos[0]:pos[0] + n].tolist()
        pos[0] += n
        return v

    W = {}
    W['model.embed_tokens.weight'] = ([vocab, dim], take(vocab * dim))

    def per_layer(name, shape):
        n = 1
        for d in shape:
            n *= d
        for l in range(layers):
            W[f'model.layers.{l}.{name}'] = (shape, take(n))

    per_layer('input_layernorm.weight', [dim])
    per_layer('self_attn.q_proj.weight', [dim, dim])
    per_layer('self_attn.k_proj.weight', [kv_dim, dim])
    per_layer('self_attn.v_proj.weight', [kv_dim, dim])
    per_layer('self_attn.o_proj.weight', [dim, dim])
    per_layer('post_attention_layernorm.weight', [dim])
    per_layer('mlp.gate_proj.weight', [hidden, dim])   # w1
    per_layer('mlp.down_proj.weight', [dim, hidden])   # w2
    per_layer('mlp.up_proj.weight', [hidden, dim])     # w3
    W['model.norm.weight'] = ([dim], take(dim))
    take(seq_len * hs // 2 * 2)  # freq_cis_real, freq_cis_imag (unused)
    if not shared:
        W['lm_head.weight'] = ([vocab, dim], take(vocab * dim))
    if pos[0] != len(floats):
        raise ValueError(f'{path}: {len(floats)} floats, header describes {pos[0]}')
    cfg = Config(hidden=dim, layers=layers, heads=heads, kv_heads=kv_heads, ffn=hidden, vocab=vocab, eps=1e-5,
                 theta=10000.0, tied=shared, interleaved=True)
    return cfg, W


def load_any(path):
    return load_hf(path) if os.path.isdir(path) else load_llama2c(path)


# ----------------------------------------------------------------------------------------------------------------------
# Forward pass

def yarn(cfg, freqs):
    """transformers modeling_rope_utils._compute_yarn_parameters: (inverse frequencies, cos/sin attention factor)."""
    rs, d = cfg.rope_scaling, cfg.head_dim
    factor = rs['factor']
    orig = rs.get('original_max_position_embeddings', cfg.max_pos)
    if cfg.max_pos != round(factor * orig):
        # transformers then takes factor = max_position_embeddings / original; keep the fixtures clear of that case
        raise ValueError('yarn: this reference expects max_position_embeddings = factor * original_max_position_embeddings')

    def mscale(s, m=1.0):
        return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0

    att = rs.get('attention_factor')
    if att is None:
        m, mad = rs.get('mscale'), rs.get('mscale_all_dim')
        att = mscale(factor, m) / mscale(factor, mad) if (m and mad) else mscale(factor)

    def correction_dim(rotations):   # the pair index whose wavelength makes `rotations` turns over `orig` positions
        return d * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(cfg.theta))

    low = max(math.floor(correction_dim(rs.get('beta_fast') or 32)), 0)
    high = min(math.ceil(correction_dim(rs.get('beta_slow') or 1)), d - 1)
    if low == high:
        high += 0.001
    out = []
    for i, f in enumerate(freqs):
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)   # 0: keep f (extrapolate), 1: f / factor (interpolate)
        out.append(f / factor * ramp + f * (1 - ramp))
    return out, att


def inv_freqs(cfg):
    """Rotary inverse frequencies for pairs i in [0, head_dim/2): theta^(-2i/d), then Llama 3.1 or YaRN scaling."""
    d = cfg.head_dim
    freqs = [1.0 / (cfg.theta ** (2 * i / d)) for i in range(d // 2)]
    rs = cfg.rope_scaling
    if rs is None:
        return freqs
    kind = rs.get('rope_type', rs.get('type'))
    if kind == 'linear':
        return [f / rs['factor'] for f in freqs]
    if kind == 'yarn':
        return yarn(cfg, freqs)[0]
    if kind != 'llama3':
        raise ValueError(f'rope_scaling {kind} not implemented in this reference')
    # transformers modeling_rope_utils._compute_llama3_parameters
    factor = rs['factor']
    low_ff = rs['low_freq_factor']
    high_ff = rs['high_freq_factor']
    old_ctx = rs['original_max_position_embeddings']
    low_wavelen = old_ctx / low_ff
    high_wavelen = old_ctx / high_ff
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        f_llama = f / factor if wavelen > low_wavelen else f
        if not (wavelen < high_wavelen) and not (wavelen > low_wavelen):   # medium band: smooth interpolation
            smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff)
            f_llama = (1 - smooth) * f_llama / factor + smooth * f_llama
        out.append(f_llama)
    return out


class Matrix:
    """Row-major [rows, cols] as a list of row lists (Python floats)."""

    def __init__(self, shape, vals):
        self.rows, self.cols = shape
        c = self.cols
        self.data = [vals[r * c:(r + 1) * c] for r in range(self.rows)]

    def mv(self, x):
        return [sum(map(float.__mul__, row, x)) for row in self.data]


class Reference:
    def __init__(self, cfg, W):
        self.cfg = cfg
        self.freqs = inv_freqs(cfg)
        rs = cfg.rope_scaling
        self.rope_mul = yarn(cfg, self.freqs)[1] if rs and rs.get('rope_type', rs.get('type')) == 'yarn' else 1.0
        M = lambda n: Matrix(*W[n])
        V = lambda n: list(W[n][1])
        self.emb = Matrix(*W['model.embed_tokens.weight'])
        self.layers = []
        for l in range(cfg.layers):
            p = f'model.layers.{l}.'
            L = dict(an=V(p + 'input_layernorm.weight'), mn=V(p + 'post_attention_layernorm.weight'),
                     q=M(p + 'self_attn.q_proj.weight'), k=M(p + 'self_attn.k_proj.weight'),
                     v=M(p + 'self_attn.v_proj.weight'), o=M(p + 'self_attn.o_proj.weight'),
                     g=M(p + 'mlp.gate_proj.weight'), u=M(p + 'mlp.up_proj.weight'), d=M(p + 'mlp.down_proj.weight'))
            if cfg.bias:
                L['bq'], L['bk'], L['bv'] = V(p + 'self_attn.q_proj.bias'), V(p + 'self_attn.k_proj.bias'), V(p + 'self_attn.v_proj.bias')
            if cfg.qk_norm:
                L['qn'], L['kn'] = V(p + 'self_attn.q_norm.weight'), V(p + 'self_attn.k_norm.weight')
            self.layers.append(L)
        self.norm = V('model.norm.weight')
        self.head = self.emb if (cfg.tied or 'lm_head.weight' not in W) else Matrix(*W['lm_head.weight'])

    def rmsnorm(self, x, w):
        inv = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + self.cfg.eps)
        return [v * inv * wi for v, wi in zip(x, w)]

    def rope(self, v, pos):
        d = len(v)
        h = d // 2
        out = list(v)
        for i in range(h):
            a = pos * self.freqs[i]
            c, s = math.cos(a) * self.rope_mul, math.sin(a) * self.rope_mul
            if self.cfg.interleaved:
                x0, x1 = v[2 * i], v[2 * i + 1]
                out[2 * i], out[2 * i + 1] = x0 * c - x1 * s, x0 * s + x1 * c
            else:  # HF: q*cos + rotate_half(q)*sin, rotate_half(x) = cat(-x[h:], x[:h])
                x0, x1 = v[i], v[i + h]
                out[i], out[i + h] = x0 * c - x1 * s, x1 * c + x0 * s
        return out

    def new_cache(self):
        return [([], []) for _ in range(self.cfg.layers)]

    def step(self, token, pos, cache):
        """Logits after feeding `token` at position `pos`; appends its keys/values to `cache`."""
        cfg = self.cfg
        hd, H, KV = cfg.head_dim, cfg.heads, cfg.kv_heads
        group = H // KV
        x = list(self.emb.data[token])
        for l, L in enumerate(self.layers):
            xb = self.rmsnorm(x, L['an'])
            q, k, v = L['q'].mv(xb), L['k'].mv(xb), L['v'].mv(xb)
            if cfg.bias:
                q = [a + b for a, b in zip(q, L['bq'])]
                k = [a + b for a, b in zip(k, L['bk'])]
                v = [a + b for a, b in zip(v, L['bv'])]
            qn = (lambda v: self.rmsnorm(v, L['qn'])) if cfg.qk_norm else (lambda v: v)
            kn = (lambda v: self.rmsnorm(v, L['kn'])) if cfg.qk_norm else (lambda v: v)
            q = sum((self.rope(qn(q[h * hd:(h + 1) * hd]), pos) for h in range(H)), [])
            k = sum((self.rope(kn(k[h * hd:(h + 1) * hd]), pos) for h in range(KV)), [])
            K, Vc = cache[l]
            K.append(k)
            Vc.append(v)
            att = []
            scale = 1.0 / math.sqrt(hd)
            for h in range(H):
                kh = h // group
                qh = q[h * hd:(h + 1) * hd]
                scores = [sum(map(float.__mul__, qh, kt[kh * hd:(kh + 1) * hd])) * scale for kt in K]
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                o = [0.0] * hd
                for p, w in enumerate(e):
                    vt = Vc[p]
                    w /= z
                    for i in range(hd):
                        o[i] += w * vt[kh * hd + i]
                att.extend(o)
            x = [a + b for a, b in zip(x, L['o'].mv(att))]
            xb = self.rmsnorm(x, L['mn'])
            g, u = L['g'].mv(xb), L['u'].mv(xb)
            hmid = [gi / (1.0 + math.exp(-gi)) * ui for gi, ui in zip(g, u)]
            x = [a + b for a, b in zip(x, L['d'].mv(hmid))]
        return self.head.mv(self.rmsnorm(x, self.norm))

    def prompt_logits(self, tokens):
        cache = self.new_cache()
        return [self.step(t, p, cache) for p, t in enumerate(tokens)], cache

    def greedy(self, tokens, n):
        """Greedy continuation of n tokens; also returns the smallest top-1/top-2 logit margin seen (tie safety)."""
        rows, cache = self.prompt_logits(tokens)
        last = rows[-1]
        out, margin = [], float('inf')
        pos = len(tokens)
        for i in range(n):
            best = max(range(len(last)), key=lambda j: last[j])
            second = max(v for j, v in enumerate(last) if j != best)
            margin = min(margin, last[best] - second)
            out.append(best)
            if i + 1 < n:
                last = self.step(best, pos, cache)
                pos += 1
        return out, margin


def argmax(v):
    return max(range(len(v)), key=lambda j: v[j])


# ----------------------------------------------------------------------------------------------------------------------
# Tiny random models

def random_weights(cfg, seed, untied_head):
    """Deterministic weights, every value exactly representable in bf16 and in f16 (|x| >= 2^-14 or 0),
    so the F32, BF16 and F16 files of a model hold identical numbers."""
    rnd = random.Random(seed)

    def q(x):
        x = bf16_round(x)
        return 0.0 if abs(x) < 2.0 ** -14 else x

    def mat(rows, cols, std):
        return ([rows, cols], [q(rnd.gauss(0.0, std)) for _ in range(rows * cols)])

    def vec(n, mean, std):
        return ([n], [q(mean + rnd.gauss(0.0, std)) for _ in range(n)])

    d, hd = cfg.hidden, cfg.head_dim
    qd, kvd = cfg.heads * hd, cfg.kv_heads * hd
    W = {'model.embed_tokens.weight': mat(cfg.vocab, d, 0.7)}
    for l in range(cfg.layers):
        p = f'model.layers.{l}.'
        W[p + 'input_layernorm.weight'] = vec(d, 1.0, 0.2)
        W[p + 'post_attention_layernorm.weight'] = vec(d, 1.0, 0.2)
        W[p + 'self_attn.q_proj.weight'] = mat(qd, d, 2.0 / math.sqrt(d))
        W[p + 'self_attn.k_proj.weight'] = mat(kvd, d, 2.0 / math.sqrt(d))
        W[p + 'self_attn.v_proj.weight'] = mat(kvd, d, 1.0 / math.sqrt(d))
        W[p + 'self_attn.o_proj.weight'] = mat(d, qd, 1.0 / math.sqrt(qd))
        if cfg.bias:
            W[p + 'self_attn.q_proj.bias'] = vec(qd, 0.0, 0.5)
            W[p + 'self_attn.k_proj.bias'] = vec(kvd, 0.0, 0.5)
            W[p + 'self_attn.v_proj.bias'] = vec(kvd, 0.0, 0.5)
        if cfg.qk_norm:
            W[p + 'self_attn.q_norm.weight'] = vec(hd, 1.0, 0.2)
            W[p + 'self_attn.k_norm.weight'] = vec(hd, 1.0, 0.2)
        W[p + 'mlp.gate_proj.weight'] = mat(cfg.ffn, d, 1.5 / math.sqrt(d))
        W[p + 'mlp.up_proj.weight'] = mat(cfg.ffn, d, 1.5 / math.sqrt(d))
        W[p + 'mlp.down_proj.weight'] = mat(d, cfg.ffn, 1.0 / math.sqrt(cfg.ffn))
    W['model.norm.weight'] = vec(d, 1.0, 0.2)
    if untied_head:
        W['lm_head.weight'] = mat(cfg.vocab, d, 0.7)
    return W


TINY = {
    'tiny-qwen2': dict(
        seed=20250201,
        hf={
            'architectures': ['Qwen2ForCausalLM'], 'model_type': 'qwen2', 'hidden_act': 'silu',
            'vocab_size': 96, 'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 2,
            'num_attention_heads': 4, 'num_key_value_heads': 2, 'max_position_embeddings': 128,
            'rms_norm_eps': 1e-06, 'rope_theta': 10000.0, 'rope_scaling': None, 'tie_word_embeddings': False,
            'use_sliding_window': False, 'sliding_window': 128, 'max_window_layers': 2,
            'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'float32', 'attention_dropout': 0.0,
        },
        prompt=[1, 17, 42, 5, 88, 63, 29, 71, 3, 50, 95, 12]),
    'tiny-llama3': dict(
        seed=20250202,
        hf={
            'architectures': ['LlamaForCausalLM'], 'model_type': 'llama', 'hidden_act': 'silu',
            'vocab_size': 96, 'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 2,
            'num_attention_heads': 4, 'num_key_value_heads': 2, 'max_position_embeddings': 512,
            'rms_norm_eps': 1e-05, 'rope_theta': 10000.0,
            'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                             'original_max_position_embeddings': 64},
            'tie_word_embeddings': True, 'attention_bias': False, 'mlp_bias': False,
            'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'float32', 'attention_dropout': 0.0,
        },
        prompt=[1, 60, 7, 33, 91, 14, 2, 77, 45, 8, 66, 23]),
    # Qwen3 (R1-0528-Qwen3-8B's shape in small): head_dim 16 != hidden / heads = 8, q_norm / k_norm, no biases, untied
    # head, YaRN x4 over an original context of 32 (so the ramp spans the pairs), and the `attn_factor` key that
    # R1-0528-Qwen3-8B's config carries and transformers ignores.
    'tiny-qwen3': dict(
        seed=20250528,
        hf={
            'architectures': ['Qwen3ForCausalLM'], 'model_type': 'qwen3', 'hidden_act': 'silu',
            'vocab_size': 96, 'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 2,
            'num_attention_heads': 4, 'num_key_value_heads': 2, 'head_dim': 16, 'max_position_embeddings': 128,
            'rms_norm_eps': 1e-06, 'rope_theta': 10000.0,
            'rope_scaling': {'rope_type': 'yarn', 'factor': 4.0, 'original_max_position_embeddings': 32,
                             'attn_factor': 0.8782488562869419},
            'tie_word_embeddings': False, 'attention_bias': False, 'use_sliding_window': False,
            'sliding_window': None, 'max_window_layers': 2,
            'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'float32', 'attention_dropout': 0.0,
        },
        prompt=[1, 9, 80, 41, 3, 57, 26, 94, 13, 70, 35, 62]),
}

STORIES_PROMPT = [1, 403, 407, 261, 378]  # "<s> Once upon a time" in tok512.bin
GREEDY_TINY = 8
GREEDY_STORIES = 64


def write_logits(path, rows):
    with open(path, 'wb') as f:
        for r in rows:
            f.write(struct.pack(f'<{len(r)}f', *r))


def gen_tiny(root, name):
    spec = TINY[name]
    hf = spec['hf']
    folder = os.path.join(root, 'tests', 'fixtures', name)
    os.makedirs(os.path.join(folder, 'bf16'), exist_ok=True)
    for sub, dtype in (('', 'float32'), ('bf16', 'bfloat16')):
        with open(os.path.join(folder, sub, 'config.json'), 'w') as f:
            json.dump(dict(hf, torch_dtype=dtype), f, indent=2)
            f.write('\n')
    cfg = config_from_hf(os.path.join(folder, 'config.json'))
    W = random_weights(cfg, spec['seed'], untied_head=not cfg.tied)
    write_safetensors(os.path.join(folder, 'model.safetensors'), W, 'F32')
    write_safetensors(os.path.join(folder, 'bf16', 'model.safetensors'), W, 'BF16')
    # Check the files by reading them back with the reader (both must give the same numbers).
    cfg, W32 = load_hf(folder)
    _, W16 = load_hf(os.path.join(folder, 'bf16'))
    assert all(W32[n][1] == W16[n][1] for n in W32), 'bf16 file differs from f32 file'

    ref = Reference(cfg, W32)
    prompt = spec['prompt']
    rows, _ = ref.prompt_logits(prompt)
    greedy, margin = ref.greedy(prompt, GREEDY_TINY)
    write_logits(os.path.join(folder, 'reference_logits_f32.bin'), rows)
    info = {
        'prompt_ids': prompt,
        'logits_file': f'reference_logits_f32.bin: {len(rows)} rows x {cfg.vocab} float32 LE; row i = logits after '
                       f'prompt_ids[0..i] (causal, positions 0..i)',
        'vocab_size': cfg.vocab,
        'argmax_per_position': [argmax(r) for r in rows],
        f'greedy_continuation_{GREEDY_TINY}': greedy,
        'greedy_min_top2_margin': margin,
        'logit_abs_max': max(abs(v) for r in rows for v in r),
        'weights': f'random.Random({spec["seed"]}).gauss, rounded to bf16 and |x| < 2^-14 flushed to 0, so model.safetensors '
                   '(F32), bf16/model.safetensors (BF16) and any F16 copy hold identical numbers',
        'generator': 'tools/reference/llama_ref.py gen-fixtures (plain Python, double precision)',
    }
    if cfg.rope_scaling:
        # Evidence that the llama3 scaling matters at these positions: logits without it.
        plain = Config(**{**cfg.__dict__, 'rope_scaling': None})
        plain.head_dim = cfg.head_dim
        unscaled, _ = Reference(plain, W32).prompt_logits(prompt)
        info['inv_freq_unscaled'] = inv_freqs(plain)
        info['inv_freq_' + cfg.rope_scaling['rope_type']] = inv_freqs(cfg)
        info['max_abs_diff_vs_unscaled_rope'] = max(abs(a - b) for r, s in zip(rows, unscaled) for a, b in zip(r, s))
    with open(os.path.join(folder, 'reference.json'), 'w') as f:
        json.dump(info, f, indent=1)
        f.write('\n')
    return info


def gen_stories(root):
    model = os.path.join(root, 'models', 'stories260K', 'stories260K.bin')
    cfg, W = load_llama2c(model)
    ref = Reference(cfg, W)
    rows, _ = ref.prompt_logits(STORIES_PROMPT)
    greedy, margin = ref.greedy(STORIES_PROMPT, GREEDY_STORIES)
    folder = os.path.join(root, 'tests', 'fixtures', 'tiny-stories260K-reference')
    os.makedirs(folder, exist_ok=True)
    write_logits(os.path.join(folder, 'reference_logits_f32.bin'), rows)
    info = {
        'model': 'models/stories260K/stories260K.bin (karpathy/llama2.c, MIT)',
        'prompt_ids': STORIES_PROMPT,
        'logits_file': f'reference_logits_f32.bin: {len(rows)} rows x {cfg.vocab} float32 LE; row i = logits after prompt_ids[0..i]',
        'vocab_size': cfg.vocab,
        'argmax_per_position': [argmax(r) for r in rows],
        f'greedy_continuation_{GREEDY_STORIES}': greedy,
        'greedy_min_top2_margin': margin,
        'generator': 'tools/reference/llama_ref.py gen-fixtures (plain Python, double precision, interleaved rope as run.c)',
    }
    with open(os.path.join(folder, 'reference.json'), 'w') as f:
        json.dump(info, f, indent=1)
        f.write('\n')
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    g = sub.add_parser('gen-fixtures')
    g.add_argument('--root', default=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')))
    g.add_argument('--only', choices=['tiny-qwen2', 'tiny-llama3', 'tiny-qwen3', 'stories'], default=None)
    for name in ('logits', 'greedy'):
        s = sub.add_parser(name)
        s.add_argument('model')
        s.add_argument('--tokens', required=True)
        s.add_argument('--out')
        s.add_argument('-n', type=int, default=8)
    a = ap.parse_args()
    if a.cmd == 'gen-fixtures':
        for name in TINY:
            if a.only in (None, name):
                info = gen_tiny(a.root, name)
                print(name, json.dumps({k: v for k, v in info.items() if 'greedy' in k or 'diff' in k}))
        if a.only in (None, 'stories'):
            info = gen_stories(a.root)
            print('stories260K', json.dumps({k: v for k, v in info.items() if 'greedy' in k}))
        return
    cfg, W = load_any(a.model)
    ref = Reference(cfg, W)
    toks = [int(t) for t in a.tokens.split(',')]
    if a.cmd == 'logits':
        rows, _ = ref.prompt_logits(toks)
        if a.out:
            write_logits(a.out, rows)
        print(json.dumps({'argmax': [argmax(r) for r in rows], 'last_first8': rows[-1][:8]}))
    else:
        print(json.dumps(ref.greedy(toks, a.n)))


if __name__ == '__main__':
    main()
