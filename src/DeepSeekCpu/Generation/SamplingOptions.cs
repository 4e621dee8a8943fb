namespace DeepSeekCpu.Generation;

/// <summary>
/// How the next token is chosen. Temperature 0 is greedy (argmax). Otherwise: repetition penalty on the logits, softmax
/// at the temperature, then min-p, top-k and top-p (nucleus) on those probabilities, and a seeded draw among the rest.
/// Defaults are DeepSeek's recommendation for R1 (temperature 0.6, top-p 0.95).
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>Softmax temperature; 0: greedy (the most likely token).</summary>
    public float Temperature { get; init; } = 0.6f;
    /// <summary>Keep only the k most likely tokens; 0: off.</summary>
    public int TopK { get; init; } = 0;
    /// <summary>Keep the most likely tokens whose probabilities add up to p (nucleus); 1: off.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Drop tokens less likely than min-p times the most likely one; 0: off.</summary>
    public float MinP { get; init; } = 0f;
    /// <summary>CTRL-style penalty on tokens seen in the repetition window (positive logits divided, negative multiplied); 1: off.</summary>
    public float RepetitionPenalty { get; init; } = 1f;
    /// <summary>How many of the last tokens the penalties look at.</summary>
    public int RepetitionWindow { get; init; } = 64;
    /// <summary>Seed of the draw (the same seed, prompt and options draw the same tokens); null: a random seed.</summary>
    public ulong? Seed { get; init; }
    /// <summary>OpenAI presence_penalty: subtracted once from each token seen in the repetition window (0: off).</summary>
    public float PresencePenalty { get; init; }
    /// <summary>OpenAI frequency_penalty: subtracted per occurrence in the repetition window (0: off).</summary>
    public float FrequencyPenalty { get; init; }
    /// <summary>OpenAI logit_bias: added to the logit of each listed token id (-100 bans it in practice).</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    /// <summary>Always the most likely token (temperature 0, no nucleus).</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0, TopP = 1 };

    /// <summary>Checks ranges; the message names the option.</summary>
    public void Validate()
    {
        if (Temperature < 0 || float.IsNaN(Temperature)) throw new ArgumentException($"temperature must be >= 0 (got {Temperature})");
        if (TopK < 0) throw new ArgumentException($"top-k must be >= 0 (got {TopK})");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1] (got {TopP})");
        if (!(MinP >= 0 && MinP < 1)) throw new ArgumentException($"min-p must be in [0, 1) (got {MinP})");
        if (!(RepetitionPenalty > 0)) throw new ArgumentException($"repetition penalty must be > 0 (got {RepetitionPenalty})");
        if (!(PresencePenalty >= -2 && PresencePenalty <= 2)) throw new ArgumentException($"presence penalty must be in [-2, 2] (got {PresencePenalty})");
        if (!(FrequencyPenalty >= -2 && FrequencyPenalty <= 2)) throw new ArgumentException($"frequency penalty must be in [-2, 2] (got {FrequencyPenalty})");
        if (LogitBias != null)
            foreach (var (id, bias) in LogitBias)
                if (id < 0 || !(bias >= -100 && bias <= 100)) throw new ArgumentException($"logit bias {id}: {bias} must be a token id >= 0 with a bias in [-100, 100]");
    }
}
