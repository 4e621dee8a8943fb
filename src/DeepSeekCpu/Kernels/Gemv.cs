using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Kernels.Arm;
using DeepSeekCpu.Kernels.Reference;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Kernels.X86;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Matrix-vector products (decode, and a few tokens at once): memory-bound, so each weight row is streamed once
/// and dotted with every token while it sits in L1. Quantized weights meet activations quantized once per call
/// (Q8_0 or Q8_K style) in integer dot products; float formats decode in registers.
/// </summary>
internal static unsafe class Gemv
{
    /// <summary>The dot product for quantized weights of <paramref name="t"/> on <paramref name="path"/>, or null.</summary>
    public static delegate*<byte*, ActQ8*, float> QuantDot(DType t, KernelPath path) => path switch
    {
        KernelPath.Avx512 => t switch
        {
            DType.Q8_0 => &DotX86.Q8_0Avx512,
            DType.Q4_0 => ActQ8.HasNibbleOrder ? &DotX86.Q4_0Vbmi : &DotX86.Q4_0Avx512,
            DType.Q4_K => &DotX86.Q4_KAvx512,
            DType.Q5_K => &DotX86.Q5_KAvx512,
            DType.Q6_K => &DotX86.Q6_KAvx512,
            // 256-bit bodies: with AVX-VNNI where the CPU has it (AVX-512 alone does not imply it)
            DType.Q4_1 => AvxVnni.IsSupported ? &DotX86.Q4_1<VnniDot> : &DotX86.Q4_1<MaddDot>,
            DType.Q5_0 => AvxVnni.IsSupported ? &DotX86.Q5_0<VnniDot> : &DotX86.Q5_0<MaddDot>,
            DType.Q2_K => &DotX86.Q2_K<DotX86.Runs512>,
            DType.Q3_K => &DotX86.Q3_K<DotX86.Runs512>,
            DType.Q5_1 => &DotX86.Q5_1Avx512,
            DType.IQ4_NL => &DotX86.IQ4_NLAvx512,
            DType.MXFP4 => &DotX86.MXFP4Avx512,
            DType.IQ4_XS => &DotX86.IQ4_XSAvx512,
            _ when IQuantDecode.Handles(t) => IQuantDecode.Dot(t, path),
            _ => QuantDotReference(t),
        },
        // The 256-bit x86 and the Arm bodies differ between paths only by their int8 dot (VNNI or vpmaddubsw; sdot or
        // widening multiplies), a type argument.
        KernelPath.Avx2Vnni => X86Dot<VnniDot>(t, path),
        KernelPath.Avx2 => X86Dot<MaddDot>(t, path),
        KernelPath.NeonDp => ArmDot<SdotDot>(t, path),
        KernelPath.Neon => ArmDot<WideningDot>(t, path),
        _ => QuantDotReference(t),
    };

    private static delegate*<byte*, ActQ8*, float> X86Dot<TDot>(DType t, KernelPath path) where TDot : IU8S8Dot => t switch
    {
        DType.Q8_0 => &DotX86.Q8_0<TDot>,
        DType.Q4_0 => &DotX86.Q4_0<TDot>,
        DType.Q4_K => &DotX86.Q4_K,
        DType.Q5_K => &DotX86.Q5_K,
        DType.Q6_K => &DotX86.Q6_K,
        DType.Q4_1 => &DotX86.Q4_1<TDot>,
        DType.Q5_0 => &DotX86.Q5_0<TDot>,
        DType.Q2_K => &DotX86.Q2_K<DotX86.Runs256>,
        DType.Q3_K => &DotX86.Q3_K<DotX86.Runs256>,
        DType.Q5_1 => &DotX86.Q5_1<TDot>,
        DType.IQ4_NL => &DotX86.IQ4_NL<TDot>,
        DType.MXFP4 => &DotX86.MXFP4<TDot>,
        DType.IQ4_XS => &DotX86.IQ4_XS,
        _ when IQuantDecode.Handles(t) => IQuantDecode.Dot(t, path),
        _ => QuantDotReference(t),
    };

    private static delegate*<byte*, ActQ8*, float> ArmDot<TDot>(DType t, KernelPath path) where TDot : IS8Dot => t switch
    {
        DType.Q8_0 => &DotArm.Q8_0<TDot>,
        DType.Q4_0 => &DotArm.Q4_0<TDot>,
        DType.Q4_K => &DotArm.Q4_K<TDot>,
        DType.Q5_K => &DotArm.Q5_K<TDot>,
        DType.Q6_K => &DotArm.Q6_K<TDot>,
        DType.Q2_K => &DotArm.Q2_K<TDot>,
        DType.Q3_K => &DotArm.Q3_K<TDot>,
        DType.Q5_1 => &DotArm.Q5_1<TDot>,
        DType.IQ4_NL => &DotArm.IQ4_NL<TDot>,
        DType.MXFP4 => &DotArm.MXFP4<TDot>,
        DType.IQ4_XS => &DotArm.IQ4_XS<TDot>,
        _ when IQuantDecode.Handles(t) => IQuantDecode.Dot(t, path),
        _ => QuantDotReference(t),
    };

    /// <summary>The quantized-activation dot of <paramref name="w"/>, or null where it computes with float32 activations.</summary>
    private static delegate*<byte*, ActQ8*, float> QuantDotOf(WeightMatrix w, KernelPath path) =>
        w.Activations == ActivationPrecision.Float32 ? null : QuantDot(w.Type, path);

    /// <summary>The scalar specification (also used on every path for formats without a SIMD body yet).</summary>
    public static delegate*<byte*, ActQ8*, float> QuantDotReference(DType t) =>
        IQuantDecode.Handles(t) ? IQuantDecode.Dot(t, KernelPath.Scalar) : BlockSpecs.For(t).Dot;

    /// <summary>The dot product for float-like weights (F32, F16, BF16, FP8) on <paramref name="path"/>, or null.</summary>
    public static delegate*<byte*, float*, int, float*, float> FloatDotFor(DType t, KernelPath path) => t switch
    {
        DType.F32 => &FloatDot.F32,
        DType.F16 => path switch
        {
            KernelPath.Avx512 => &FloatDot.F16V512,
            KernelPath.Avx2 or KernelPath.Avx2Vnni => &FloatDot.F16V256,
            KernelPath.Neon or KernelPath.NeonDp => &FloatDot.F16V128,
            _ => &FloatDot.F16Scalar,
        },
        DType.BF16 => path switch
        {
            KernelPath.Avx512 => &FloatDot.Bf16V512,
            KernelPath.Avx2 or KernelPath.Avx2Vnni => &FloatDot.Bf16V256,
            KernelPath.Neon or KernelPath.NeonDp => &FloatDot.Bf16V128,
            _ => &FloatDot.Bf16Scalar,
        },
        DType.F8_E4M3 => path switch
        {
            KernelPath.Avx512 => &FloatDot.Fp8V512,
            KernelPath.Avx2 or KernelPath.Avx2Vnni => &FloatDot.Fp8V256,
            KernelPath.Neon or KernelPath.NeonDp => &FloatDot.Fp8V128,
            _ => &FloatDot.Fp8Scalar,
        },
        // matrices with ActivationPrecision.Float32 (WeightMatrix.HasFloatActivationBody lists these formats)
        DType.MXFP4 => path switch
        {
            KernelPath.Avx512 => &DotX86.MXFP4F32Avx512,
            KernelPath.Avx2 or KernelPath.Avx2Vnni => &DotX86.MXFP4F32Avx2,
            KernelPath.Neon or KernelPath.NeonDp => &DotArm.MXFP4F32,
            _ => &DotReference.MXFP4F32,
        },
        _ => null,
    };

    [ThreadStatic] private static byte[]? _actScratch;
    [ThreadStatic] private static Job? _job;
    [ThreadStatic] private static MatMulBatch? _single;

    /// <summary>y[t, r] = x[t, :] · w[r, :] for t &lt; n (pointers checked by the caller).</summary>
    public static void Run(WeightMatrix w, float* x, float* y, int n, KernelPath path)
    {
        var b = _single ??= new MatMulBatch();
        b.Clear(n);
        b.Add(w, x, y);
        Run(b, path);
        b.Clear(0);
    }

    /// <summary>
    /// Every product of <paramref name="batch"/> in one pool dispatch: the rows of all its matrices form one range
    /// that the workers split, so a decode step's small matrices (a layer's experts, per-head MLA products) cost one
    /// round trip instead of one each.
    /// </summary>
    public static void Run(MatMulBatch batch, KernelPath path)
    {
        var job = _job ??= new Job();
        int count = batch.Count;
        job.Ensure(count);
        // Quantize each input once, on this thread (a few microseconds per token): a task that shares its input and
        // activation format (Q8_0 or Q8_K style) with the task before it shares the quantized copy. Callers add the
        // products of one input next to each other (q and kv_a, gate and up, a token's experts), so comparing with the
        // previous task finds every share without an O(tasks²) search (MLA adds 128 per-head tasks on V3).
        long bytes = 0;
        for (int i = 0; i < count; i++)
            if (QuantDotOf(batch.W[i], path) != null) bytes += ActQ8.BytesFor(batch.W[i].Cols) * batch.N[i] + StructBytes(batch.N[i]);
        byte* mem = bytes == 0 ? null : Scratch.Get(ref _actScratch, bytes);
        int rows = 0;
        for (int i = 0; i < count; i++)
        {
            var w = batch.W[i];
            int n = batch.N[i];
            job.W[i] = w; job.X[i] = batch.X[i]; job.Y[i] = batch.Y[i]; job.N[i] = n;
            // each task's rows start at a multiple of 16 in the combined range, so the pool's chunks (whole grains of
            // 16) never split an interleaved group; the padding rows of a task do nothing
            job.RowStart[i] = rows; rows += (w.Rows + Interleave.Rows - 1) / Interleave.Rows * Interleave.Rows;
            var qdot = QuantDotOf(w, path);
            job.QDot[i] = (nint)qdot;
            job.FDot[i] = qdot == null ? (nint)FloatDotFor(w.Type, path) : 0;
            // an interleaved copy (made at load) runs the group body: 16 rows per call, same activations
            job.GDot[i] = w.Interleaved != null ? (nint)Interleave.GroupDot(w.Type, path) : 0;
            job.GDots[i] = w.Interleaved != null ? (nint)Interleave.GroupDots(w.Type, path) : 0;
            job.Acts[i] = 0;
            if (qdot == null) continue;
            int p = i - 1;
            if (p >= 0 && job.Acts[p] != 0 && job.X[p] == job.X[i] && job.W[p].Cols == w.Cols && job.N[p] == n
                && ActQ8.UsesQ8K(job.W[p].Type) == ActQ8.UsesQ8K(w.Type))
                job.Acts[i] = job.Acts[p];
            if (job.Acts[i] != 0) continue;
            long per = ActQ8.BytesFor(w.Cols);
            var acts = (ActQ8*)mem; mem += StructBytes(n);           // keeps mem 64-byte aligned
            for (int t = 0; t < n; t++)
            {
                acts[t] = ActQ8.At(mem, w.Cols); mem += per;
                ActQ8.QuantizeFor(w.Type, (float*)batch.X[i] + (long)t * w.Cols, acts + t);
            }
            job.Acts[i] = (nint)acts;
        }
        job.RowStart[count] = rows;
        job.Count = count;
        WorkerPool.Shared.Run(job, rows, grain: Interleave.Rows);
        Array.Clear(job.W, 0, count);
    }

    private static long StructBytes(int n) => (n * sizeof(ActQ8) + 63) & ~63L;

    private sealed class Job : IRangeJob
    {
        private const int RowGroup = 4;
        [ThreadStatic] private static float[]? _rowScratch;
        // per task i: the matrix, its input [N, cols] and output [N, rows], its first row in the combined range
        public WeightMatrix[] W = [];
        public nint[] X = [], Y = [], Acts = [], QDot = [], FDot = [], GDot = [], GDots = [];
        public int[] RowStart = [];   // [Count + 1]
        public int[] N = [];          // tokens of each task
        public int Count;

        public void Ensure(int count)
        {
            if (W.Length >= count) return;
            int c = Math.Max(count, W.Length * 2);
            W = new WeightMatrix[c]; X = new nint[c]; Y = new nint[c]; Acts = new nint[c];
            QDot = new nint[c]; FDot = new nint[c]; GDot = new nint[c]; GDots = new nint[c]; RowStart = new int[c + 1]; N = new int[c];
        }

        /// <summary>Rows [start, end) of the combined range, task by task.</summary>
        public void Run(int start, int end)
        {
            int i = 0;
            while (RowStart[i + 1] <= start) i++;
            for (int r = start; r < end; i++)
            {
                int stop = Math.Min(end, RowStart[i + 1]);
                int first = r - RowStart[i], last = Math.Min(stop - RowStart[i], W[i].Rows);
                if (first < last)
                {
                    if (GDot[i] != 0) RunGroups(i, first, last); else RunRows(i, first, last);
                }
                r = stop;
            }
        }

        /// <summary>Most tokens per call of a multi-token group body here (its output, 16 floats per token, sits on the stack).</summary>
        private const int GroupTokens = 16;

        /// <summary>Rows [start, end) of task <paramref name="i"/> from its interleaved copy, 16 rows per body call.</summary>
        private void RunGroups(int i, int start, int end)
        {
            var w = W[i];
            var dot = (delegate*<byte*, ActQ8*, float*, void>)GDot[i];
            var dots = (delegate*<byte*, ActQ8*, int, float*, void>)GDots[i];
            var acts = (ActQ8*)Acts[i];
            int rows = w.Rows, n = N[i];
            long groupBytes = Interleave.GroupBytes(w.Type, w.Cols);
            float* y16 = stackalloc float[Interleave.Rows * GroupTokens];   // [tokens, 16]
            for (int g = start / Interleave.Rows; g * Interleave.Rows < end; g++)
            {
                int r0 = Math.Max(start, g * Interleave.Rows), r1 = Math.Min(end, (g + 1) * Interleave.Rows);
                byte* group = w.Interleaved + g * groupBytes;
                // several tokens: the group (16 rows) stays in cache while every token's activations pass over it; a
                // multi-token body unpacks each weight chunk once for up to 4 of them
                for (int t0 = 0; t0 < n; t0 += GroupTokens)
                {
                    int k = Math.Min(GroupTokens, n - t0);
                    if (dots != null && k > 1) dots(group, acts + t0, k, y16);
                    else for (int t = 0; t < k; t++) dot(group, acts + t0 + t, y16 + Interleave.Rows * t);
                    for (int t = 0; t < k; t++)
                    {
                        float* yt = (float*)Y[i] + (long)(t0 + t) * rows;
                        for (int r = r0; r < r1; r++) yt[r] = y16[Interleave.Rows * t + r - g * Interleave.Rows];
                    }
                }
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void RunRows(int i, int start, int end)
        {
            var w = W[i];
            int rows = w.Rows, cols = w.Cols, n = N[i];
            float* x = (float*)X[i], y = (float*)Y[i];
            if (QDot[i] != 0)
            {
                var dot = (delegate*<byte*, ActQ8*, float>)QDot[i];
                var acts = (ActQ8*)Acts[i];
                if (n == 1)
                    for (int r = start; r < end; r++) y[r] = dot(w.Row(r), acts);
                else
                    // Several tokens (batched decoding): a few rows at a time against each token, so the rows stay
                    // in L1 while each token's activations are read once per group of rows, not once per row.
                    for (int r0 = start; r0 < end; r0 += RowGroup)
                    {
                        int r1 = Math.Min(end, r0 + RowGroup);
                        for (int t = 0; t < n; t++)
                            for (int r = r0; r < r1; r++) y[(long)t * rows + r] = dot(w.Row(r), acts + t);
                    }
            }
            else if (FDot[i] != 0)
            {
                var dot = (delegate*<byte*, float*, int, float*, float>)FDot[i];
                for (int r = start; r < end; r++)
                {
                    float* scales = w.BlockScales == null ? null : w.BlockScales + (r / WeightMatrix.Fp8BlockSize) * w.ScaleCols;
                    byte* row = w.Row(r);
                    for (int t = 0; t < n; t++) y[(long)t * rows + r] = dot(row, x + (long)t * cols, cols, scales);
                }
            }
            else
            {
                // Formats without a dot kernel: dequantize the row, then a float dot per token.
                var scratch = _rowScratch is { } s && s.Length >= cols ? s : (_rowScratch = new float[cols]);
                var buf = scratch.AsSpan(0, cols);
                for (int r = start; r < end; r++)
                {
                    Dequantize.RowOf(w, r, buf);
                    for (int t = 0; t < n; t++) y[(long)t * rows + r] = TensorPrimitives.Dot(buf, new ReadOnlySpan<float>(x + (long)t * cols, cols));
                }
            }
        }
    }
}
