return DeepSeekCpu.Cli.Commands.Main(args);
