"""ONNX export of the reference models with the `org.moe_mlir` domain.

Every MoE layer is one node of domain `org.moe_mlir` (version 1) whose op is
a model-local ONNX function: its body is made of standard ONNX ops (opset 17),
so any ONNX runtime executes the file unchanged, while moe-mlir maps each
function to its fused `moe` op. The bodies compute the dense formulation
(every expert, gates masked to the selected top-k); modules.py computes the
sparse one, so fixtures compare two independent implementations.

The domain is documented in docs/onnx-moe-domain.md. String attributes
(gate, activation, mode) select the function body: the functions are
model-local, so the exporter emits the body for the variant in use and
refuses a model that mixes variants of one op.
"""
import math

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

DOMAIN = "org.moe_mlir"
DOMAIN_VERSION = 1
OPSET = 17

ONNX_FLOAT = TensorProto.FLOAT


def attr_ref(name, ref, kind):
    """An attribute whose value is the calling node's attribute `ref`."""
    a = AttributeProto()
    a.name, a.ref_attr_name, a.type = name, ref, kind
    return a


class Body:
    """Collects the nodes of a graph or function body with fresh names."""

    def __init__(self, prefix):
        self.nodes, self.prefix, self.count = [], prefix, 0

    def fresh(self, hint):
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def op(self, op_type, *inputs, outputs=1, domain="", refs=(), name=None,
           **attrs):
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        node = helper.make_node(op_type, list(inputs), names, domain=domain,
                                name=name or self.fresh("n"), **attrs)
        node.attribute.extend(refs)
        self.nodes.append(node)
        return names[0] if outputs == 1 else names

    # Constants ---------------------------------------------------------
    def const(self, value, dtype=np.float32):
        arr = np.asarray(value, dtype=dtype)
        return self.op("Constant", value=numpy_helper.from_array(arr))

    def ints(self, *values):
        return self.const(list(values), np.int64)

    def attr_int(self, ref):
        """A 1-element int64 tensor holding the node attribute `ref`."""
        scalar = self.op("Constant",
                         refs=[attr_ref("value_int", ref, AttributeProto.INT)])
        return self.op("Reshape", scalar, self.ints(1))

    def attr_float(self, ref):
        """A scalar float tensor holding the node attribute `ref`."""
        return self.op("Constant",
                       refs=[attr_ref("value_float", ref, AttributeProto.FLOAT)])

    # Helpers -----------------------------------------------------------
    def dim(self, x, index):
        """Dimension `index` of x as a 1-element int64 tensor."""
        return self.op("Slice", self.op("Shape", x), self.ints(index),
                       self.ints(index + 1))

    def zeros_like(self, x):
        return self.op("ConstantOfShape", self.op("Shape", x),
                       value=numpy_helper.from_array(np.zeros(1, np.float32)))

    def activation(self, x, kind):
        if kind == "relu":
            return self.op("Relu", x)
        if kind == "gelu":  # exact: 0.5 x (1 + erf(x / sqrt 2))
            erf = self.op("Erf", self.op("Mul", x, self.const(1 / math.sqrt(2))))
            return self.op("Mul", self.op("Mul", x, self.const(0.5)),
                           self.op("Add", erf, self.const(1.0)))
        if kind == "silu":
            return self.op("Mul", x, self.op("Sigmoid", x))
        if kind == "identity":
            return self.op("Identity", x)
        raise ValueError(f"unknown activation {kind!r}")

    def topk_mask(self, scores, k, gate, axis):
        """Gate values of the top-k entries along `axis`, zero elsewhere."""
        if gate == "softmax":
            scores = self.op("Softmax", scores, axis=axis)
        values, ids = self.op("TopK", scores, k, outputs=2, axis=axis)
        if gate == "sigmoid":
            values = self.op("Sigmoid", values)
        elif gate == "topk_softmax":
            values = self.op("Softmax", values, axis=axis)
        elif gate != "softmax":
            raise ValueError(f"unknown gate {gate!r}")
        return self.op("ScatterElements", self.zeros_like(scores), ids, values,
                       axis=axis)

    def all_experts(self, x, w1, w2, activation):
        """act(x @ w1[e]) @ w2[e] for every expert: x [N, D] -> [E, N, D]."""
        h = self.op("MatMul", self.op("Unsqueeze", x, self.ints(0)), w1)
        return self.op("MatMul", self.activation(h, activation), w2)

    def combine_experts(self, mask, y_all):
        """Σ_e mask[n, e] * y_all[e, n]: mask [N, E], y_all [E, N, D]."""
        m = self.op("Unsqueeze", self.op("Transpose", mask, perm=[1, 0]),
                    self.ints(2))
        return self.op("ReduceSum", self.op("Mul", m, y_all), self.ints(0),
                       keepdims=0)

    def rope(self, x, half, r, base):
        """RoPE (rotate-half) on the first r dims of x [B, T, H, dh]."""
        t = self.op("Cast", self.op("Range", self.const(0, np.int64),
                                    self.op("Squeeze", self.dim(x, 1)),
                                    self.const(1, np.int64)), to=ONNX_FLOAT)
        i = self.op("Cast", self.op("Range", self.const(0, np.int64),
                                    self.op("Squeeze", half),
                                    self.const(1, np.int64)), to=ONNX_FLOAT)
        r_f = self.op("Cast", r, to=ONNX_FLOAT)
        exponent = self.op("Div", self.op("Mul", i, self.const(-2.0)), r_f)
        inv_freq = self.op("Pow", base, exponent)                  # [half]
        angle = self.op("Mul", self.op("Unsqueeze", t, self.ints(1)),
                        self.op("Unsqueeze", inv_freq, self.ints(0)))
        angle = self.op("Unsqueeze", angle, self.ints(0, 2))      # [1,T,1,half]
        cos, sin = self.op("Cos", angle), self.op("Sin", angle)
        axis = self.ints(3)
        x1 = self.op("Slice", x, self.ints(0), half, axis)
        x2 = self.op("Slice", x, half, r, axis)
        rest = self.op("Slice", x, r, self.ints(2 ** 62), axis)
        a = self.op("Sub", self.op("Mul", x1, cos), self.op("Mul", x2, sin))
        b = self.op("Add", self.op("Mul", x2, cos), self.op("Mul", x1, sin))
        return self.op("Concat", a, b, rest, axis=3)


def make_function(op_type, inputs, attributes, build):
    body = Body(f"{op_type}_")
    output = build(body, *inputs)
    body.nodes.append(helper.make_node("Identity", [output], ["y"]))
    return helper.make_function(
        DOMAIN, op_type, inputs, ["y"], body.nodes,
        [helper.make_opsetid("", OPSET)], attributes)


#===----------------------------------------------------------------------===#
# The functions of the domain
#===----------------------------------------------------------------------===#

def moe_feed_forward(gate, activation):
    """MoEFeedForward(x, selector_input, w_sel, w1, w2) -> y, attrs k, gate,
    activation."""
    def build(b, x, xs, w_sel, w1, w2):
        scores = b.op("MatMul", xs, b.op("Transpose", w_sel, perm=[1, 0]))
        mask = b.topk_mask(scores, b.attr_int("k"), gate, axis=1)
        return b.combine_experts(mask, b.all_experts(x, w1, w2, activation))
    return make_function("MoEFeedForward",
                         ["x", "selector_input", "w_sel", "w1", "w2"],
                         ["k", "gate", "activation"], build)


def switch_feed_forward(activation):
    """SwitchFeedForward(x, w_sel, w1, w2) -> y, attrs capacity_factor,
    activation."""
    def build(b, x, w_sel, w1, w2):
        p = b.op("Softmax", b.op("MatMul", x, b.op("Transpose", w_sel,
                                                  perm=[1, 0])), axis=1)
        p_max = b.op("ReduceMax", p, axes=[1], keepdims=0)          # [N]
        ids = b.op("ArgMax", p, axis=1, keepdims=0)                  # [N]
        n_experts = b.dim(w_sel, 0)
        onehot = b.op("OneHot", ids, n_experts, b.const([0.0, 1.0]), axis=-1)
        position = b.op("ReduceSum",
                        b.op("Mul", b.op("CumSum", onehot,
                                         b.const(0, np.int64)), onehot),
                        b.ints(1), keepdims=0)                      # 1-based
        n = b.op("Cast", b.dim(x, 0), to=ONNX_FLOAT)
        e = b.op("Cast", n_experts, to=ONNX_FLOAT)
        capacity = b.op("Ceil", b.op("Mul", b.op("Div", n, e),
                                     b.attr_float("capacity_factor")))
        kept = b.op("Cast", b.op("LessOrEqual", position, capacity),
                    to=ONNX_FLOAT)
        weight = b.op("Unsqueeze", b.op("Mul", p_max, kept), b.ints(1))
        mask = b.op("Mul", onehot, weight)
        return b.combine_experts(mask, b.all_experts(x, w1, w2, activation))
    return make_function("SwitchFeedForward", ["x", "w_sel", "w1", "w2"],
                         ["capacity_factor", "activation"], build)


def tree_gated_layer(mode, activation):
    """TreeGatedLayer(h, w_gate, w) -> y, attrs mode, activation."""
    def build(b, h, w_gate, w):
        bits = b.op("Cast", b.op("Greater", b.op("MatMul", h, w_gate),
                                 b.const(0.0)), to=ONNX_FLOAT)   # [N, depth]
        depth = b.op("Squeeze", b.dim(w_gate, 1))
        one = b.const(1, np.int64)
        i = b.op("Unsqueeze", b.op("Range", b.const(0, np.int64), depth, one),
                 b.ints(1))                                       # [depth, 1]
        two = b.const(2.0)
        if mode == "path":
            # Slot j (0..depth) is node (2^j - 1) + Σ_{i<j} b_i 2^(j-1-i).
            j = b.op("Unsqueeze", b.op("Range", b.const(0, np.int64),
                                       b.op("Add", depth, one), one),
                     b.ints(0))                                   # [1, depth+1]
            power = b.op("Pow", two, b.op("Cast", b.op("Sub", b.op("Sub", j, one),
                                                      i), to=ONNX_FLOAT))
            weights = b.op("Where", b.op("Less", i, j), power, b.const(0.0))
            base = b.op("Sub", b.op("Pow", two, b.op("Cast", j, to=ONNX_FLOAT)),
                        b.const(1.0))
            ids_f = b.op("Add", b.op("MatMul", bits, weights), base)
        elif mode == "flat":
            power = b.op("Pow", two, b.op("Cast", b.op("Sub", b.op("Sub", depth,
                                                                   one), i),
                                          to=ONNX_FLOAT))          # [depth, 1]
            ids_f = b.op("MatMul", bits, power)                    # [N, 1]
        else:
            raise ValueError(f"unknown tree mode {mode!r}")
        ids = b.op("Cast", ids_f, to=TensorProto.INT64)
        counts = b.op("ReduceSum",
                      b.op("OneHot", ids, b.dim(w, 0), b.const([0.0, 1.0]),
                           axis=-1), b.ints(1), keepdims=0)        # [N, P]
        y_all = b.op("MatMul", b.op("Unsqueeze", h, b.ints(0)), w)  # [P, N, Do]
        return b.activation(b.combine_experts(counts, y_all), activation)
    return make_function("TreeGatedLayer", ["h", "w_gate", "w"],
                         ["mode", "activation"], build)


def _switchhead(b, q_src, k_src, v_src, wq, wk, wv, wo, sel_o, sel_v):
    heads = b.attr_int("num_heads")
    k = b.attr_int("k")
    minus1 = b.ints(-1)
    d_model, dv = b.dim(wv, 1), b.dim(wv, 2)
    dk = b.op("Div", b.dim(wq, 1), heads)
    # r = floor(dk * fraction) rounded down to even: half = floor(...) / 2
    # (integer division), r = 2 * half.
    floor_r = b.op("Cast", b.op("Floor", b.op("Mul",
                                              b.op("Cast", dk, to=ONNX_FLOAT),
                                              b.attr_float("rotate_fraction"))),
                   to=TensorProto.INT64)
    half = b.op("Div", floor_r, b.ints(2))
    r = b.op("Mul", half, b.ints(2))
    base = b.attr_float("rope_base")
    heads_shape = b.op("Concat", b.ints(0, 0), heads, minus1, axis=0)

    def project(src, w):                                           # [B,H,T,dk]
        x4 = b.op("Reshape", b.op("MatMul", src, w), heads_shape)
        return b.op("Transpose", b.rope(x4, half, r, base), perm=[0, 2, 1, 3])

    def head_gates(src, sel):                                      # [B,T,H,E]
        scores = b.op("MatMul", src, b.op("Transpose", sel, perm=[1, 0]))
        return b.topk_mask(b.op("Reshape", scores, heads_shape), k, "sigmoid",
                           axis=3)

    q, kk = project(q_src, wq), project(k_src, wk)
    if sel_v is None:  # E = 1: dense values wv[h]
        v = b.op("Einsum", v_src, b.op("Reshape", wv, b.op(
            "Concat", heads, d_model, dv, axis=0)), equation="btd,hdv->bthv")
    else:
        wv4 = b.op("Reshape", wv, b.op("Concat", heads, minus1, d_model, dv,
                                      axis=0))
        v_all = b.op("Einsum", v_src, wv4, equation="btd,hedv->bthev")
        v = b.op("Einsum", head_gates(k_src, sel_v), v_all,
                 equation="bthe,bthev->bthv")
    v = b.op("Transpose", v, perm=[0, 2, 1, 3])                   # [B,H,T,dv]

    scale = b.op("Sqrt", b.op("Cast", dk, to=ONNX_FLOAT))
    scores = b.op("Div", b.op("MatMul", q, b.op("Transpose", kk,
                                                perm=[0, 1, 3, 2])), scale)
    t = b.dim(q_src, 1)
    ones = b.op("ConstantOfShape", b.op("Concat", t, t, axis=0),
                value=numpy_helper.from_array(np.ones(1, np.float32)))
    lower = b.op("Cast", b.op("Trilu", ones, upper=0), to=TensorProto.BOOL)
    not_causal = b.op("Equal", b.attr_int("causal"), b.ints(0))
    allowed = b.op("Or", lower, not_causal)
    scores = b.op("Where", allowed, scores, b.const(-np.inf))
    attn = b.op("MatMul", b.op("Softmax", scores, axis=-1), v)    # [B,H,T,dv]
    attn = b.op("Transpose", attn, perm=[0, 2, 1, 3])             # [B,T,H,dv]

    wo4 = b.op("Reshape", wo, b.op("Concat", heads, minus1, dv, d_model, axis=0))
    y_all = b.op("Einsum", attn, wo4, equation="bthv,hevd->bthed")
    return b.op("Einsum", head_gates(q_src, sel_o), y_all,
                equation="bthe,bthed->btd")


SWITCHHEAD_ATTRS = ["num_heads", "k", "causal", "rotate_fraction", "rope_base"]
SWITCHHEAD_INPUTS = ["q_src", "k_src", "v_src", "wq", "wk", "wv", "wo", "sel_o"]


def switchhead_attention():
    return make_function("SwitchHeadAttention", SWITCHHEAD_INPUTS + ["sel_v"],
                         SWITCHHEAD_ATTRS, _switchhead)


def switchhead_gated_attention():
    """The E = 1 variant: dense values, per-head sigmoid output gate."""
    return make_function("SwitchHeadGatedAttention", SWITCHHEAD_INPUTS,
                         SWITCHHEAD_ATTRS,
                         lambda b, *ins: _switchhead(b, *ins, None))


def mixture_of_tokens(mode, activation):
    """MixtureOfTokens(x, w_ctrl, w1, w2) -> y, attrs group_size, temperature,
    mode, activation."""
    def build(b, x, w_ctrl, w1, w2):
        g = b.attr_int("group_size")
        xg = b.op("Reshape", x, b.op("Concat", b.ints(-1), g, b.dim(x, 1),
                                     b.dim(x, 2), axis=0))         # [C,g,T,D]
        logits = b.op("Div", b.op("MatMul", xg, w_ctrl),
                      b.attr_float("temperature"))                 # [C,g,T,E]
        if mode == "continuous":
            m = b.op("Softmax", logits, axis=1)
        elif mode == "discrete":
            winner = b.op("ArgMax", logits, axis=1, keepdims=0)    # [C,T,E]
            m = b.op("OneHot", winner, g, b.const([0.0, 1.0]), axis=1)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        z = b.op("Einsum", m, xg, equation="cgte,cgtd->cted")
        h = b.activation(b.op("Einsum", z, w1, equation="cted,eds->ctes"),
                         activation)
        y = b.op("Einsum", h, w2, equation="ctes,esd->cted")
        out = b.op("Einsum", m, y, equation="cgte,cted->cgtd")
        return b.op("Reshape", out, b.op("Shape", x))
    return make_function("MixtureOfTokens", ["x", "w_ctrl", "w1", "w2"],
                         ["group_size", "temperature", "mode", "activation"],
                         build)


#===----------------------------------------------------------------------===#
# Model building
#===----------------------------------------------------------------------===#

class ModelBuilder:
    """Builds a model: graph nodes, initializers (each tensor stored once, by
    identity of the torch parameter) and the functions it uses."""

    def __init__(self, name):
        self.name = name
        self.body = Body("")
        self.initializers = {}
        self.functions = {}
        self.inputs, self.outputs = [], []

    def weight(self, name, tensor):
        """An initializer for a torch tensor; the same tensor object maps to
        the same initializer (MoEUT's shared layers are stored once)."""
        key = id(tensor)
        if key not in self.initializers:
            arr = tensor.detach().cpu().numpy().astype(np.float32)
            self.initializers[key] = numpy_helper.from_array(arr, name)
        return self.initializers[key].name

    def use_function(self, function, variant):
        """Registers a function body; one variant per op_type per model."""
        known = self.functions.get(function.name)
        if known is not None and known[1] != variant:
            raise ValueError(
                f"{function.name}: a model can hold one variant per op, "
                f"got {known[1]} and {variant}")
        self.functions[function.name] = (function, variant)

    def call(self, function, variant, inputs, name, **attrs):
        self.use_function(function, variant)
        return self.body.op(function.name, *inputs, domain=DOMAIN, name=name,
                            **attrs)

    def input(self, name, elem_type, dims):
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, dims))
        return name

    def output(self, value, name, elem_type, dims):
        self.body.nodes.append(helper.make_node("Identity", [value], [name],
                                                name=f"output_{name}"))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, dims))

    def build(self):
        graph = helper.make_graph(self.body.nodes, self.name, self.inputs,
                                  self.outputs,
                                  list(self.initializers.values()))
        model = helper.make_model(
            graph, producer_name="moe-mlir moe_ref",
            opset_imports=[helper.make_opsetid("", OPSET),
                           helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
            functions=[f for f, _ in self.functions.values()])
        onnx.checker.check_model(model)
        return model


def _act_of(module):
    return getattr(module, "activation", "relu")


def add_sigma_moe(mb, module, x, selector_input, name, wname=None):
    """`name` names the node, `wname` (default `name`) its weights."""
    wname = wname or name
    fn = moe_feed_forward(module.gate, module.activation)
    return mb.call(fn, (module.gate, module.activation),
                   [x, selector_input, mb.weight(f"{wname}.w_sel", module.w_sel),
                    mb.weight(f"{wname}.w1", module.w1),
                    mb.weight(f"{wname}.w2", module.w2)],
                   name, k=module.k, gate=module.gate,
                   activation=module.activation)


def add_switch_ffn(mb, module, x, name):
    fn = switch_feed_forward(module.activation)
    return mb.call(fn, module.activation,
                   [x, mb.weight(f"{name}.w_sel", module.w_sel),
                    mb.weight(f"{name}.w1", module.w1),
                    mb.weight(f"{name}.w2", module.w2)],
                   name, capacity_factor=float(module.capacity_factor),
                   activation=module.activation)


def add_switchhead(mb, module, q_src, k_src, v_src, name, wname=None):
    wname = wname or name
    ws = [mb.weight(f"{wname}.{w}", getattr(module, w))
          for w in ("wq", "wk", "wv", "wo", "sel_o")]
    attrs = dict(num_heads=module.h, k=module.k, causal=int(module.causal),
                 rotate_fraction=float(module.rotate_fraction),
                 rope_base=float(module.rope_base))
    if module.sel_v is None:
        return mb.call(switchhead_gated_attention(), None,
                       [q_src, k_src, v_src] + ws, name, **attrs)
    ws.append(mb.weight(f"{wname}.sel_v", module.sel_v))
    return mb.call(switchhead_attention(), None, [q_src, k_src, v_src] + ws,
                   name, **attrs)


def add_mot(mb, module, x, name):
    fn = mixture_of_tokens(module.mode, module.activation)
    return mb.call(fn, (module.mode, module.activation),
                   [x, mb.weight(f"{name}.w_ctrl", module.w_ctrl),
                    mb.weight(f"{name}.w1", module.w1),
                    mb.weight(f"{name}.w2", module.w2)],
                   name, group_size=module.g,
                   temperature=float(module.temperature), mode=module.mode,
                   activation=module.activation)


def add_tree(mb, module, h, name):
    fn = tree_gated_layer(module.mode, module.activation)
    return mb.call(fn, (module.mode, module.activation),
                   [h, mb.weight(f"{name}.w_gate", module.w_gate),
                    mb.weight(f"{name}.w", module.w)],
                   name, mode=module.mode, activation=module.activation)


def export_layer(module, kind, input_dims, name="layer"):
    """A model with one MoE layer node: input `x` (symbolic dims allowed),
    output `y` of the same shape."""
    mb = ModelBuilder(f"{kind}_model")
    x = mb.input("x", ONNX_FLOAT, input_dims)
    if kind == "sigma_moe":
        y = add_sigma_moe(mb, module, x, x, name)
    elif kind == "switch":
        y = add_switch_ffn(mb, module, x, name)
    elif kind == "switchhead":
        y = add_switchhead(mb, module, x, x, x, name)
    elif kind == "mot":
        y = add_mot(mb, module, x, name)
    elif kind == "tree":
        y = add_tree(mb, module, x, name)
        input_dims = [input_dims[0], module.w.shape[2]]
    else:
        raise ValueError(f"unknown layer kind {kind!r}")
    mb.output(y, "y", ONNX_FLOAT, input_dims)
    return mb.build()


def _layer_norm(mb, ln, x, name, wname=None):
    wname = wname or name
    return mb.body.op("LayerNormalization", x,
                      mb.weight(f"{wname}.weight", ln.weight),
                      mb.weight(f"{wname}.bias", ln.bias),
                      axis=-1, epsilon=float(ln.eps), name=name)


def export_moeut(model):
    """MoEUT as ONNX: tokens [B, T] int64 -> logits [B, T, V]. The G layer
    groups run R times; every repeat's nodes read the same initializers."""
    cfg = model.cfg
    mb = ModelBuilder("moeut")
    b = mb.body
    tokens = mb.input("tokens", TensorProto.INT64, ["B", "T"])
    x = b.op("Gather", mb.weight("embedding", model.embedding), tokens, axis=0,
             name="embedding")
    rows_shape = b.ints(-1, cfg.d_model)
    for r in range(cfg.repeats):
        for g, layer in enumerate(model.layers):
            tag = f"layer{r * cfg.group + g}"
            share = f"group{g}"
            xn = _layer_norm(mb, layer.ln1, x, f"{tag}.ln1", f"{share}.ln1")
            att = add_switchhead(mb, layer.att, xn, xn, x, f"{tag}.att",
                                 f"{share}.att")
            x = b.op("Add", x, att, name=f"{tag}.residual1")
            rows = b.op("Reshape", x, rows_shape, name=f"{tag}.rows")
            ln2 = _layer_norm(mb, layer.ln2, rows, f"{tag}.ln2", f"{share}.ln2")
            upd = add_sigma_moe(mb, layer.ffn, rows, ln2, f"{tag}.ffn",
                                f"{share}.ffn")
            upd = b.op("Reshape", upd, b.op("Shape", x), name=f"{tag}.unrows")
            x = b.op("Add", x, upd, name=f"{tag}.residual2")
    x = _layer_norm(mb, model.ln_out, x, "ln_out")
    w_out = model.out.weight.detach().t().contiguous()
    logits = b.op("Add", b.op("MatMul", x, mb.weight("out.weight_t", w_out),
                              name="out.matmul"),
                  mb.weight("out.bias", model.out.bias), name="out.bias_add")
    mb.output(logits, "logits", ONNX_FLOAT, ["B", "T", cfg.vocab])
    return mb.build()

