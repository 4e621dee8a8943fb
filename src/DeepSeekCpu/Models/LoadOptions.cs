using DeepSeekCpu.Formats;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models;

/// <summary>
/// How a model is loaded (<see cref="ModelLoader.Load"/>, LocalModel.Load): the settings that used to be process-wide
/// switches set by front ends before loading. The defaults are what llama.cpp does without options.
/// </summary>
public sealed record LoadOptions
{
    /// <summary>Memory-mapped weights, one thread per physical core, an f16 KV cache, repacked quantized matrices.</summary>
    public static LoadOptions Default { get; } = new();

    /// <summary>How the files are brought into memory: mapped (default) or read into private memory (--no-mmap).</summary>
    public WeightMemory Memory { get; init; } = WeightMemory.Mmap;

    /// <summary>
    /// Threads of the engine's worker pool; 0: one per physical core (<see cref="Threading.WorkerPool.DefaultThreads"/>).
    /// The pool is one per process (ENGINEERING.md), sized by the load: models that run at the same time in one
    /// process must be loaded with the same count.
    /// </summary>
    public int Threads { get; init; }

    /// <summary>How KV caches store keys and values (--cache-type): f16 by default, as llama.cpp; f32 is exact.</summary>
    public KvCacheType CacheType { get; init; } = KvCacheType.F16;

    /// <summary>Conversion of matrices at load (e.g. --quant q8_0: quantize float weights); null keeps them as stored.</summary>
    internal Func<WeightMatrix, WeightMatrix>? MatrixTransform { get; init; }

    /// <summary>
    /// Whether quantized matrices get a copy re-laid-out for the decode kernels at load (--repack on|off; Q4_0 and Q8_0:
    /// groups of 16 rows interleaved, see Kernels/Repack/Interleave), where the active instruction set has a body for
    /// it. Costs resident memory about the size of those matrices; the memory map stays as it is for prompt processing.
    /// </summary>
    public bool Repack { get; init; } = true;

    /// <summary>
    /// Builds the model graph instead of the managed engine (the TorchSharp backend, DeepSeekCpu.Torch): it receives the
    /// configuration and weights the engine's readers opened; null: the managed graph.
    /// </summary>
    internal Func<ModelConfig, ModelWeights, ILanguageModel>? Graph { get; init; }
}
