using System.CommandLine;

namespace DeepSeekCpu.Cli;

internal static partial class Commands
{
    /// <summary>
    /// `completion bash|zsh`: a script that asks this program for completions through System.CommandLine's
    /// [suggest:POSITION] directive (the protocol dotnet-suggest uses), so they always match the options declared here.
    /// Install: `source &lt;(deepseek-cpu completion bash)` in ~/.bashrc, or `source &lt;(deepseek-cpu completion zsh)` in ~/.zshrc.
    /// </summary>
    private static Command CompletionCommand()
    {
        var shell = new Argument<string>("SHELL") { Description = "bash or zsh" };
        shell.CompletionSources.Add("bash", "zsh");
        shell.Validators.Add(r => { if (r.Tokens is [{ Value: not ("bash" or "zsh") and var v }]) r.AddError($"expected bash or zsh, got '{v}'"); });
        var c = new Command("completion", "print a shell completion script (bash or zsh)") { shell };
        c.SetAction(p =>
        {
            Console.Out.Write(p.GetValue(shell) == "zsh" ? ZshCompletion : BashCompletion);
            return 0;
        });
        return c;
    }

    // COMP_LINE/COMP_POINT (bash) and BUFFER/CURSOR (zsh) hold the whole line and the cursor; the directive takes the
    // line and the cursor's position in it.
    private const string BashCompletion = """
        # deepseek-cpu completion for bash: source <(deepseek-cpu completion bash)
        _deepseek_cpu_complete() {
          local IFS=$'\n'
          COMPREPLY=( $(compgen -W "$("${COMP_WORDS[0]}" "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null)" -- "${COMP_WORDS[COMP_CWORD]}") )
        }
        complete -o default -F _deepseek_cpu_complete deepseek-cpu

        """;

    private const string ZshCompletion = """
        # deepseek-cpu completion for zsh: source <(deepseek-cpu completion zsh)
        _deepseek_cpu_complete() {
          local -a items
          items=("${(@f)$(${words[1]} "[suggest:${CURSOR}]" "${BUFFER}" 2>/dev/null)}")
          compadd -a items
        }
        compdef _deepseek_cpu_complete deepseek-cpu

        """;
}
