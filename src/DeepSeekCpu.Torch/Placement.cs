using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Torch;

/// <summary>
/// Pipeline placement of a model on several devices of one machine: consecutive layers per device, split so that each
/// device holds about the same bytes of weights (as Hugging Face accelerate's device_map="auto" and llama.cpp's
/// layer split do). The embedding table goes with the first layer, the final norm and the head with the last.
/// Bytes are what the backend keeps on the device (<see cref="DeviceBytes"/>); computed from the tensor list alone,
/// so `info` can print a plan without loading libtorch.
/// </summary>
internal sealed class Placement
{
    public IReadOnlyList<string> Devices { get; }
    /// <summary>Device index of each layer.</summary>
    public int[] LayerDevice { get; }
    /// <summary>Bytes of weights on each device.</summary>
    public long[] Bytes { get; }

    private Placement(IReadOnlyList<string> devices, int[] layerDevice, long[] bytes)
    {
        Devices = devices; LayerDevice = layerDevice; Bytes = bytes;
    }

    /// <summary>
    /// Bytes a stored tensor takes on the device: Q8_0/Q4_0 packed (codes + a float32 scale per block) when
    /// <paramref name="packed"/>, everything else expanded to the compute type.
    /// </summary>
    public static long DeviceBytes(TensorView t, ComputeType dtype, bool packed = true) => t.Type switch
    {
        DType.Q8_0 when packed => t.ElementCount + t.ElementCount / 32 * 4,
        DType.Q4_0 when packed => t.ElementCount / 2 + t.ElementCount / 32 * 4,
        _ when t.Name.EndsWith("_scale_inv", StringComparison.Ordinal) => 0,   // applied while expanding FP8
        _ when t.Rank == 1 => t.ElementCount * 4,                              // norms, biases: float32
        _ => t.ElementCount * (dtype == ComputeType.F32 ? 4 : 2),
    };

    /// <summary>
    /// Resolves <see cref="WeightStorage.Auto"/>: expanded when every device is the CPU and the expanded weights take at
    /// most half of the memory this process may use (the GC's limit: physical memory or a container's limit).
    /// </summary>
    public static bool KeepPacked(ModelWeights w, TorchOptions o)
    {
        if (o.Storage != WeightStorage.Auto) return o.Storage == WeightStorage.Packed;
        if (o.Devices.Any(d => d != "cpu")) return true;
        long expanded = w.Tensors.Values.Sum(t => DeviceBytes(t, o.DType, packed: false));
        return expanded > GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;
    }

    public static Placement Plan(ModelConfig c, ModelWeights w, IReadOnlyList<string> devices, ComputeType dtype, bool packed = true)
    {
        int L = c.NumLayers, D = devices.Count;
        var layerBytes = new long[L];
        long first = 0, last = 0;
        foreach (var t in w.Tensors.Values)
        {
            long b = DeviceBytes(t, dtype, packed);
            if (LayerOf(t.Name) is int l) { if (l < L) layerBytes[l] += b; }   // MTP layers (l ≥ L) are not loaded
            else if (t.Name.StartsWith("model.embed_tokens", StringComparison.Ordinal)) first += b;
            else last += b;
        }
        // Layer l goes to the device whose share of the running total contains the middle of the layer.
        long total = first + last + layerBytes.Sum(), done = first;
        var layerDevice = new int[L];
        var bytes = new long[D];
        bytes[0] += first;
        for (int l = 0; l < L; l++)
        {
            double middle = done + layerBytes[l] / 2.0;
            int d = Math.Min(D - 1, (int)(middle * D / Math.Max(1, total)));
            if (l > 0) d = Math.Max(d, layerDevice[l - 1]);                    // consecutive
            layerDevice[l] = d;
            bytes[d] += layerBytes[l];
            done += layerBytes[l];
        }
        bytes[layerDevice[L - 1]] += last;
        return new Placement(devices, layerDevice, bytes);
    }

    private static int? LayerOf(string name)
    {
        const string prefix = "model.layers.";
        if (!name.StartsWith(prefix, StringComparison.Ordinal)) return null;
        int end = name.IndexOf('.', prefix.Length);
        return end > 0 && int.TryParse(name.AsSpan(prefix.Length, end - prefix.Length), out int l) ? l : null;
    }

    /// <summary>One line per device: its layers and bytes (`info --devices`).</summary>
    public IEnumerable<string> Describe()
    {
        for (int d = 0; d < Devices.Count; d++)
        {
            var layers = Enumerable.Range(0, LayerDevice.Length).Where(l => LayerDevice[l] == d).ToList();
            string range = layers.Count == 0 ? "no layers" : layers.Count == 1 ? $"layer {layers[0]}" : $"layers {layers[0]}-{layers[^1]}";
            string extra = (d == 0 ? " + embedding" : "") + (LayerDevice.Length > 0 && d == LayerDevice[^1] ? " + norm, head" : "");
            yield return string.Format(System.Globalization.CultureInfo.InvariantCulture,
                "{0}: {1}{2}, {3:N0} bytes ({4:F2} GiB)", Devices[d], range, extra, Bytes[d], Bytes[d] / (double)(1L << 30));
        }
    }
}
