namespace DeepSeekCpu.Torch;

/// <summary>The element type the backend computes in (--dtype): weights are expanded to it, activations and the KV cache use it.</summary>
public enum ComputeType { F32, BF16, F16 }

/// <summary>
/// How the TorchSharp backend runs a model: on which devices ("cpu", "cuda", "cuda:N"; several: consecutive layers
/// split by bytes, <see cref="Placement"/>), in which element type, with how many CPU threads (0: libtorch's default).
/// </summary>
public sealed record TorchOptions
{
    public IReadOnlyList<string> Devices { get; init; } = ["cpu"];
    public ComputeType DType { get; init; } = ComputeType.F32;
    public int Threads { get; init; }

    /// <summary>Parses --dtype: f32, bf16 or f16; null for anything else.</summary>
    public static ComputeType? ParseDType(string s) => s.ToLowerInvariant() switch
    {
        "f32" or "float32" => ComputeType.F32,
        "bf16" or "bfloat16" => ComputeType.BF16,
        "f16" or "float16" => ComputeType.F16,
        _ => null,
    };

    /// <summary>Checks a device name's syntax (cpu, cuda, cuda:N); null if it is fine, else what is wrong.</summary>
    public static string? CheckDeviceName(string d)
    {
        if (d is "cpu" or "cuda") return null;
        if (d.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(d.AsSpan(5), out int n) && n >= 0 && n < 1024) return null;
        return $"device '{d}' is not one of cpu, cuda, cuda:N";
    }
}
