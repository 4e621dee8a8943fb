namespace DeepSeekCpu.Bench;

internal static class MmapBench
{
    public static int Run(string[] args) { Console.WriteLine("todo"); return 0; }
}
