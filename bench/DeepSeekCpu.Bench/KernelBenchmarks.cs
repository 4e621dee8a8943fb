using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>Matrix-vector (decode) at the R1-Distill-Qwen-1.5B shapes; the GB/s column is weight bytes / mean time.</summary>
[Config(typeof(ThroughputConfig))]
public class GemvBenchmarks
{
    [Params(DType.Q4_0, DType.Q8_0, DType.Q4_K, DType.Q6_K, DType.BF16)]
    public DType Type;

    [Params("1536x1536", "256x1536", "8960x1536", "1536x8960", "151936x1536")]
    public string Shape = "1536x1536";

    private WeightMatrix _w = null!;
    private float[] _x = null!, _y = null!;

    [GlobalSetup]
    public void Setup()
    {
        var (rows, cols) = ThroughputConfig.Parse(Shape);
        _w = BenchWeights.Make(Type, rows, cols);
        _x = BenchWeights.Activations(cols);
        _y = new float[rows];
    }

    [GlobalCleanup] public void Cleanup() => _w.Dispose();

    [Benchmark] public void Gemv() => MatMul.Multiply(_w, _x, _y, 1);
}

/// <summary>Matrix-matrix (prompt) with 512 tokens; the GFLOP/s column is 2·rows·cols·512 / mean time.</summary>
[Config(typeof(ThroughputConfig))]
public class GemmBenchmarks
{
    public const int Tokens = 512;

    [Params(DType.Q4_0, DType.Q8_0, DType.Q4_K, DType.Q6_K, DType.BF16)]
    public DType Type;

    [Params("1536x1536", "256x1536", "8960x1536", "1536x8960")]
    public string Shape = "1536x1536";

    private WeightMatrix _w = null!;
    private float[] _x = null!, _y = null!;

    [GlobalSetup]
    public void Setup()
    {
        var (rows, cols) = ThroughputConfig.Parse(Shape);
        _w = BenchWeights.Make(Type, rows, cols);
        _x = BenchWeights.Activations(Tokens * cols);
        _y = new float[Tokens * rows];
    }

    [GlobalCleanup] public void Cleanup() => _w.Dispose();

    [Benchmark] public void Gemm() => MatMul.Multiply(_w, _x, _y, Tokens);
}

/// <summary>Adds GB/s (GEMV) or GFLOP/s (GEMM) computed from the parameters and the mean time.</summary>
public class ThroughputConfig : ManualConfig
{
    public ThroughputConfig() => AddColumn(new ThroughputColumn());

    public static (int Rows, int Cols) Parse(string shape)
    {
        var p = shape.Split('x');
        return (int.Parse(p[0]), int.Parse(p[1]));
    }

    private sealed class ThroughputColumn : IColumn
    {
        public string Id => "Throughput";
        public string ColumnName => "Throughput";
        public bool AlwaysShow => true;
        public ColumnCategory Category => ColumnCategory.Custom;
        public int PriorityInCategory => 0;
        public bool IsNumeric => true;
        public UnitType UnitType => UnitType.Dimensionless;
        public string Legend => "GEMV: GB/s of weights read; GEMM: GFLOP/s";
        public bool IsAvailable(Summary summary) => true;
        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
        {
            var stats = summary[benchmarkCase]?.ResultStatistics;
            if (stats == null) return "-";
            var type = (DType)benchmarkCase.Parameters["Type"];
            var (rows, cols) = Parse((string)benchmarkCase.Parameters["Shape"]);
            double seconds = stats.Mean / 1e9;
            return benchmarkCase.Descriptor.WorkloadMethod.Name == "Gemm"
                ? $"{2.0 * rows * cols * GemmBenchmarks.Tokens / seconds / 1e9:F1} GFLOP/s"
                : $"{type.ByteCount((long)rows * cols) / seconds / 1e9:F1} GB/s";
        }
    }
}
