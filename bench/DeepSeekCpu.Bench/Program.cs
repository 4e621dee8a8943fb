using BenchmarkDotNet.Running;
using DeepSeekCpu.Bench;

// `quick [--threads N] [--n 512] [--formats Q4_0,Q8_0] [--ms 300] [--no-gemm] [--no-gemv] [--cpu-time] [--x16]`: a few seconds, no BDN.
// `peak`: vpdpbusd and vpmaddubsw+vpaddw per second on one core (the GEMM inner loops' arithmetic bound).
// `bodies`: each dot-product body alone (ns per 1000 weights, single thread, L2-resident).
// `crossover [--no-repack]`: GEMV vs GEMM time per token for small n (the crossovers in MatMul.Plan), over interleaved copies unless --no-repack.
// `experts [--threads N] [--n 256] [--format Q4_0]`: an MoE layer's gate/up half, unfused vs fused (ExpertGemm), CPU time.
// `quantize`: Quantize.Matrix speed per target type.
// `attention [--keys N] [--rows 64] [--heads 1] [--dk 192] [--dv 128]`: flash attention of a block of query rows, one thread, GFLOP/s beside the FMA rate.
// `attention --decode [--keys 8192] [--heads 12] [--kv-heads 2] [--cache f16] [--threads 1]`: one decoding row over K/V caches, GB/s of cache read.
// `mmap FILE`: read bandwidth of a memory-mapped file with and without madvise/mlock/copy (see MmapBench).
// Anything else goes to BenchmarkDotNet (e.g. `--filter *Gemv*`).
if (args.Length > 0 && args[0] == "peak") return Peak.Run(args[1..]);   // the int8 instructions' bound on this core (Peak.cs)
if (args.Length > 0 && args[0] == "quick") return Quick.Run(args[1..]);
if (args.Length > 0 && args[0] == "mmap") return MmapBench.Run(args[1..]);
if (args.Length > 0 && args[0] == "bodies") return Bodies.Run(args[1..]);
if (args.Length > 0 && args[0] == "crossover") return Crossover.Run(args[1..]);
if (args.Length > 0 && args[0] == "experts") return ExpertsBench.Run(args[1..]);   // MoE gate/up: unfused vs ExpertGemm
if (args.Length > 0 && args[0] == "attention") return AttentionBench.Run(args[1..]);   // the prompt path's attention tiles (AttentionBench.cs)
if (args.Length > 0 && args[0] == "quantize") return QuantizeBench.Run(args[1..]);
if (args.Length > 0 && args[0] == "soak") return Soak.Run(args[1..]);   // the server under a mixed load (Soak.cs)
if (args.Length > 0 && args[0] == "load") return LoadBench.Run(args[1..]);   // tokens/s, TTFT, inter-token latency at N clients
if (args.Length > 0 && args[0] == "context") return SparseContext.Run(args[1..]);   // V3 dense vs V3.2 sparse attention against context length
if (args.Length > 0 && args[0] == "tokenize") return TokenizeBench.Run(args[1..]);
BenchmarkSwitcher.FromAssembly(typeof(BenchWeights).Assembly).Run(args);
return 0;
