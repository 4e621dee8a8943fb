namespace DeepSeekCpu.Torch;

/// <summary>The element type the backend computes in (--dtype): weights are expanded to it, activations and the KV cache use it.</summary>
public enum ComputeType
{
    /// <summary>float32.</summary>
    F32,
    /// <summary>bfloat16.</summary>
    BF16,
    /// <summary>IEEE half.</summary>
    F16,
}

/// <summary>
/// How Q8_0/Q4_0 weights live on the device. <see cref="Packed"/>: as their blocks (about the file's size), decoded on
/// the device for every product, which is what lets R1/V3 fit a node of GPUs, but costs a pass that writes the whole
/// matrix in the compute type per product. <see cref="Expanded"/>: decoded once at load into the compute type (4 or 2
/// bytes per weight), then every product is a plain matrix multiply. <see cref="Auto"/> expands when every device is
/// the CPU and the expanded weights take at most half of the memory the process may use; otherwise packed (TorchSharp
/// 0.107 cannot ask a CUDA device for its free memory, so on GPUs packed is the safe choice).
/// </summary>
public enum WeightStorage
{
    /// <summary>Expanded on the CPU when it fits in half the memory, packed otherwise.</summary>
    Auto,
    /// <summary>As their blocks, decoded on the device for every product.</summary>
    Packed,
    /// <summary>Decoded once at load into the compute type.</summary>
    Expanded,
}

/// <summary>
/// How the TorchSharp backend runs a model: on which devices ("cpu", "cuda", "cuda:N"; several: consecutive layers
/// split by bytes, <see cref="Placement"/>), in which element type, with how many CPU threads (0: libtorch's default).
/// </summary>
public sealed record TorchOptions
{
    /// <summary>"cpu", "cuda" or "cuda:N"; several: consecutive layers split over them by bytes.</summary>
    public IReadOnlyList<string> Devices { get; init; } = ["cpu"];
    /// <summary>The type weights are expanded to and activations and the KV cache use.</summary>
    public ComputeType DType { get; init; } = ComputeType.F32;
    /// <summary>libtorch's CPU threads; 0: its default.</summary>
    public int Threads { get; init; }
    /// <summary>How Q8_0/Q4_0 weights live on the device.</summary>
    public WeightStorage Storage { get; init; } = WeightStorage.Auto;

    /// <summary>Parses --torch-weights: auto, packed or expanded; null for anything else.</summary>
    internal static WeightStorage? ParseStorage(string s) => s.ToLowerInvariant() switch
    {
        "auto" => WeightStorage.Auto,
        "packed" => WeightStorage.Packed,
        "expanded" => WeightStorage.Expanded,
        _ => null,
    };

    /// <summary>Parses --dtype: f32, bf16 or f16; null for anything else.</summary>
    internal static ComputeType? ParseDType(string s) => s.ToLowerInvariant() switch
    {
        "f32" or "float32" => ComputeType.F32,
        "bf16" or "bfloat16" => ComputeType.BF16,
        "f16" or "float16" => ComputeType.F16,
        _ => null,
    };

    /// <summary>Checks a device name's syntax (cpu, cuda, cuda:N); null if it is fine, else what is wrong.</summary>
    internal static string? CheckDeviceName(string d)
    {
        if (d is "cpu" or "cuda") return null;
        if (d.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(d.AsSpan(5), out int n) && n >= 0 && n < 1024) return null;
        return $"device '{d}' is not one of cpu, cuda, cuda:N";
    }
}
