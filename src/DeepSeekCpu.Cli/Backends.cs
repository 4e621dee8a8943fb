using System.Runtime.CompilerServices;
using DeepSeekCpu.Models;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Cli;

/// <summary>
/// --backend managed|torch, --device cpu|cuda|cuda:N, --devices D1,D2,... (consecutive layers split by bytes) and
/// --dtype f32|bf16|f16, --torch-weights auto|packed|expanded (Q8_0/Q4_0 kept packed on the device or expanded at
/// load; auto: expanded on the CPU when it fits in half the memory). The TorchSharp backend (DeepSeekCpu.Torch) is touched only when asked for: its assemblies
/// and libtorch load when the model is built, so the CLI starts and runs the managed engine without them.
/// </summary>
internal static class Backends
{
    /// <summary>The options every model-loading command accepts.</summary>
    public static System.CommandLine.Option[] Options() =>
    [
        Opt.Text("--backend", "managed", "the engine: this project's managed kernels, or TorchSharp", "managed|torch"),
        Opt.Text("--device", null, "torch: the device (default cpu)", "cpu|cuda|cuda:N"),
        Opt.Text("--devices", null, "torch: consecutive layers split over these devices, by bytes", "D1,D2,..."),
        Opt.Text("--dtype", null, "torch: the weights' and activations' type (default f32)", "f32|bf16|f16"),
        Opt.Text("--torch-weights", null, "torch: Q8_0/Q4_0 packed on the device (decoded per product) or expanded at load (default auto: expanded on the CPU when it fits in half the memory)", "auto|packed|expanded"),
    ];

    /// <summary>The graph factory for LoadOptions.Graph: null for the managed engine.</summary>
    public static Func<ModelConfig, ModelWeights, ILanguageModel>? Graph(CliArgs a, string command)
    {
        var (devices, dtype) = Parse(a, command);
        if (devices == null) return null;
        if (a.Str("--quant") != null) throw new UsageException($"{command}: --quant converts weights for the managed engine; the torch backend computes in --dtype");
        int threads = a.Int("--threads");
        string storage = a.Str("--torch-weights") ?? "auto";
        return (config, weights) => Guarded(() => BuildTorch(config, weights, devices, dtype, threads, storage));
    }

    /// <summary>The devices (null: managed backend) and --dtype as given; checks the spelling of every option.</summary>
    public static (string[]? devices, string dtype) Parse(CliArgs a, string command)
    {
        string backend = a.Str("--backend") ?? "managed";
        string dtype = (a.Str("--dtype") ?? "f32").ToLowerInvariant();
        if (backend == "managed")
        {
            foreach (var o in new[] { "--device", "--devices", "--dtype", "--torch-weights" })
                if (a.Has(o)) throw new UsageException($"{command}: {o} needs --backend torch");
            return (null, dtype);
        }
        if (backend != "torch") throw new UsageException($"{command}: option --backend expects managed or torch, got '{backend}'");
        if (a.Has("--device") && a.Has("--devices")) throw new UsageException($"{command}: give --device or --devices, not both");
        var devices = (a.Str("--devices") ?? a.Str("--device") ?? "cpu").Split(',', StringSplitOptions.TrimEntries);
        if (Guarded(() => Check(devices, dtype, a.Str("--torch-weights") ?? "auto")) is { } bad) throw new UsageException($"{command}: {bad}");
        return (devices, dtype);
    }

#if TORCH_BACKEND
    /// <summary>The backend's own checks of the device names and --dtype (what is wrong, or null).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string? Check(string[] devices, string dtype, string storage) =>
        devices.Select(Torch.TorchOptions.CheckDeviceName).FirstOrDefault(e => e != null)
        ?? (Torch.TorchOptions.ParseDType(dtype) == null ? $"option --dtype expects f32, bf16 or f16, got '{dtype}'" : null)
        ?? (Torch.TorchOptions.ParseStorage(storage) == null ? $"option --torch-weights expects auto, packed or expanded, got '{storage}'" : null);

#endif
    /// <summary>Runs code that touches DeepSeekCpu.Torch: a missing assembly becomes one line saying so.</summary>
    private static T Guarded<T>(Func<T> torchCode)
    {
        try { return torchCode(); }
        catch (FileNotFoundException e) when (e.FileName?.Contains("Torch", StringComparison.OrdinalIgnoreCase) == true)
        {
            throw new NotSupportedException($"torch backend: assembly {e.FileName.Split(',')[0]} is not beside the program (build the CLI with the DeepSeekCpu.Torch project)");
        }
    }

#if TORCH_BACKEND
    // Separate, not inlined: the JIT resolves DeepSeekCpu.Torch and TorchSharp only when this method is compiled.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ILanguageModel BuildTorch(ModelConfig config, ModelWeights weights, string[] devices, string dtype, int threads, string storage) =>
        Torch.TorchBackend.Build(config, weights, TorchOptions(devices, dtype, storage) with { Threads = threads });

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Torch.TorchOptions TorchOptions(string[] devices, string dtype, string storage) => new()
    {
        Devices = devices,
        DType = Torch.TorchOptions.ParseDType(dtype)!.Value,
        Storage = Torch.TorchOptions.ParseStorage(storage)!.Value,
    };

#endif
    /// <summary>`info --backend torch`: the placement of the layers and the bytes per device (computed without libtorch).</summary>
    public static IEnumerable<string> Placement(ModelConfig config, ModelWeights weights, string[] devices, string dtype, string? storage) =>
        Guarded(() => PlanPlacement(config, weights, devices, dtype, storage ?? "auto"));

#if TORCH_BACKEND
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static IEnumerable<string> PlanPlacement(ModelConfig config, ModelWeights weights, string[] devices, string dtype, string storage)
    {
        var o = TorchOptions(devices, dtype, storage);
        bool packed = Torch.Placement.KeepPacked(weights, o);
        return [$"Q8_0/Q4_0 weights {(packed ? "packed" : "expanded")} on the device (--torch-weights {storage})",
            .. Torch.Placement.Plan(config, weights, devices, o.DType, packed).Describe()];
    }
#else
    // The native binary and the tool package are built without DeepSeekCpu.Torch (TorchBackend in the .csproj).
    private const string NoTorch = "the torch backend is not in this build of deepseek-cpu (the native binary and the dotnet tool leave TorchSharp and libtorch out): use a JIT build from source (dotnet build src/DeepSeekCpu.Cli) or a tool packed with -p:TorchBackend=true";
    private static string? Check(string[] devices, string dtype, string storage) => throw new NotSupportedException(NoTorch);
    private static ILanguageModel BuildTorch(ModelConfig config, ModelWeights weights, string[] devices, string dtype, int threads, string storage) => throw new NotSupportedException(NoTorch);
    private static IEnumerable<string> PlanPlacement(ModelConfig config, ModelWeights weights, string[] devices, string dtype, string storage) => throw new NotSupportedException(NoTorch);
#endif
}
