using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using DeepSeekCpu.Kernels.Arm;
using DeepSeekCpu.Kernels.Reference;
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
            DType.Q4_1 => &DotX86.Q4_1<VnniDot>,
            DType.Q5_0 => &DotX86.Q5_0<VnniDot>,
            _ => QuantDotReference(t),
        },
        KernelPath.Avx2Vnni => t switch
        {
            DType.Q8_0 => &DotX86.Q8_0<VnniDot>,
            DType.Q4_0 => &DotX86.Q4_0<VnniDot>,
            DType.Q4_K => &DotX86.Q4_K,
            DType.Q5_K => &DotX86.Q5_K,
            DType.Q6_K => &DotX86.Q6_K,
            DType.Q4_1 => &DotX86.Q4_1<VnniDot>,
            DType.Q5_0 => &DotX86.Q5_0<VnniDot>,
            _ => QuantDotReference(t),
        },
        KernelPath.Avx2 => t switch
        {
            DType.Q8_0 => &DotX86.Q8_0<MaddDot>,
            DType.Q4_0 => &DotX86.Q4_0<MaddDot>,
            DType.Q4_K => &DotX86.Q4_K,
            DType.Q5_K => &DotX86.Q5_K,
            DType.Q6_K => &DotX86.Q6_K,
            DType.Q4_1 => &DotX86.Q4_1<MaddDot>,
            DType.Q5_0 => &DotX86.Q5_0<MaddDot>,
            _ => QuantDotReference(t),
        },
        KernelPath.NeonDp => t switch
        {
            DType.Q8_0 => &DotArm.Q8_0<SdotDot>,
            DType.Q4_0 => &DotArm.Q4_0<SdotDot>,
            DType.Q4_K => &DotArm.Q4_K<SdotDot>,
            DType.Q5_K => &DotArm.Q5_K<SdotDot>,
            DType.Q6_K => &DotArm.Q6_K<SdotDot>,
            _ => QuantDotReference(t),
        },
        KernelPath.Neon => t switch
        {
            DType.Q8_0 => &DotArm.Q8_0<WideningDot>,
            DType.Q4_0 => &DotArm.Q4_0<WideningDot>,
            DType.Q4_K => &DotArm.Q4_K<WideningDot>,
            DType.Q5_K => &DotArm.Q5_K<WideningDot>,
            DType.Q6_K => &DotArm.Q6_K<WideningDot>,
            _ => QuantDotReference(t),
        },
        _ => QuantDotReference(t),
    };

    /// <summary>The scalar specification (also used on every path for formats without a SIMD body yet).</summary>
    public static delegate*<byte*, ActQ8*, float> QuantDotReference(DType t) => t switch
    {
        DType.Q8_0 => &DotReference.Q8_0,
        DType.Q4_0 => &DotReference.Q4_0,
        DType.Q4_1 => &DotReference.Q4_1,
        DType.Q5_0 => &DotReference.Q5_0,
        DType.Q8_K => &DotReference.Q8_K,
        DType.Q4_K => &DotReference.Q4_K,
        DType.Q5_K => &DotReference.Q5_K,
        DType.Q6_K => &DotReference.Q6_K,
        _ => null,
    };

    /// <summary>The dot product for float-like weights (F32, F16, BF16, FP8) on <paramref name="path"/>, or null.</summary>
    public static delegate*<byte*, float*, int, float*, float> FloatDotFor(DType t, KernelPath path) => t switch
    {
        DType.F32 => &FloatDot.F32,
        DType.F16 => &FloatDot.F16,
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
        _ => null,
    };

    [ThreadStatic] private static byte[]? _actScratch;
    [ThreadStatic] private static Job? _job;

    /// <summary>y[t, r] = x[t, :] · w[r, :] for t &lt; n (pointers checked by the caller).</summary>
    public static void Run(WeightMatrix w, float* x, float* y, int n, KernelPath path)
    {
        var job = _job ??= new Job();
        job.W = w; job.X = x; job.Y = y; job.N = n;
        job.QDot = QuantDot(w.Type, path);
        job.FDot = job.QDot == null ? FloatDotFor(w.Type, path) : null;
        if (job.QDot != null)
        {
            // Quantize each token's activations once, on this thread (a few microseconds per token).
            long per = ActQ8.BytesFor(w.Cols);
            byte* mem = Scratch.Get(ref _actScratch, per * n + n * sizeof(ActQ8));
            var acts = (ActQ8*)(mem + per * n);
            for (int t = 0; t < n; t++)
            {
                acts[t] = ActQ8.At(mem + per * t, w.Cols);
                ActQ8.QuantizeFor(w.Type, x + (long)t * w.Cols, acts + t);
            }
            job.Acts = acts;
        }
        WorkerPool.Shared.Run(job, w.Rows, grain: 16);
        job.W = null!;
    }

    private sealed class Job : IRangeJob
    {
        [ThreadStatic] private static float[]? _rowScratch;
        public WeightMatrix W = null!;
        public float* X, Y;
        public int N;
        public ActQ8* Acts;
        public delegate*<byte*, ActQ8*, float> QDot;
        public delegate*<byte*, float*, int, float*, float> FDot;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            var w = W;
            int rows = w.Rows, cols = w.Cols, n = N;
            if (QDot != null)
            {
                var dot = QDot;
                for (int r = start; r < end; r++)
                {
                    byte* row = w.Row(r);
                    for (int t = 0; t < n; t++) Y[(long)t * rows + r] = dot(row, Acts + t);
                }
            }
            else if (FDot != null)
            {
                var dot = FDot;
                for (int r = start; r < end; r++)
                {
                    float* scales = w.BlockScales == null ? null : w.BlockScales + (r / WeightMatrix.Fp8BlockSize) * w.ScaleCols;
                    byte* row = w.Row(r);
                    for (int t = 0; t < n; t++) Y[(long)t * rows + r] = dot(row, X + (long)t * cols, cols, scales);
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
                    for (int t = 0; t < n; t++) Y[(long)t * rows + r] = TensorPrimitives.Dot(buf, new ReadOnlySpan<float>(X + (long)t * cols, cols));
                }
            }
        }
    }
}
