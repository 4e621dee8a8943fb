using System.Globalization;
using System.Text.Json;
using DeepSeekCpu.Generation;

namespace DeepSeekCpu.Server;

/// <summary>
/// The OpenAI fields beyond sampling basics (API reference, chat/create and completions/create): presence_penalty,
/// frequency_penalty, logit_bias, logprobs/top_logprobs (completions: logprobs as a count), n, response_format
/// (text, json_object, json_schema) and reasoning_budget (an extension, as llama.cpp's --reasoning-budget per request).
/// Each works or is a 400 naming it.
/// </summary>
internal sealed partial class ApiRequest
{
    /// <summary>Choices to generate (OpenAI n), one after another so each reuses the prompt's cached prefix.</summary>
    public int Choices = 1;
    /// <summary>The raw logit_bias token ids, checked against the vocabulary by the server.</summary>
    public int MaxBiasedToken = -1;

    /// <summary>Most choices per request: each is a whole generation.</summary>
    public const int MaxChoices = 8;

    private void ParseOpenAiFields(JsonElement root, bool chat)
    {
        var sampling = Generation.Sampling;
        if (Number(root, "presence_penalty") is double pp)
        {
            if (!(pp >= -2 && pp <= 2)) throw new ApiError(400, $"presence_penalty must be between -2 and 2 (got {pp})", "presence_penalty");
            sampling = sampling with { PresencePenalty = (float)pp };
        }
        if (Number(root, "frequency_penalty") is double fp)
        {
            if (!(fp >= -2 && fp <= 2)) throw new ApiError(400, $"frequency_penalty must be between -2 and 2 (got {fp})", "frequency_penalty");
            sampling = sampling with { FrequencyPenalty = (float)fp };
        }
        if (root.TryGetProperty("logit_bias", out var lb) && lb.ValueKind != JsonValueKind.Null)
        {
            if (lb.ValueKind != JsonValueKind.Object) throw new ApiError(400, "logit_bias must be an object of token id to bias", "logit_bias");
            var bias = new Dictionary<int, float>();
            foreach (var p in lb.EnumerateObject())
            {
                if (!int.TryParse(p.Name, NumberStyles.None, CultureInfo.InvariantCulture, out int id))
                    throw new ApiError(400, $"logit_bias key '{p.Name}' must be a token id", "logit_bias");
                if (p.Value.ValueKind != JsonValueKind.Number || !(p.Value.GetDouble() is var b && b >= -100 && b <= 100))
                    throw new ApiError(400, $"logit_bias[{p.Name}] must be a number between -100 and 100", "logit_bias");
                bias[id] = (float)p.Value.GetDouble();
                MaxBiasedToken = Math.Max(MaxBiasedToken, id);
            }
            if (bias.Count > 0) sampling = sampling with { LogitBias = bias };
        }

        int top = -1;
        if (chat)
        {
            bool on = root.TryGetProperty("logprobs", out var lp) && lp.ValueKind switch
            {
                JsonValueKind.True => true, JsonValueKind.False or JsonValueKind.Null => false,
                _ => throw new ApiError(400, "logprobs must be true or false", "logprobs"),
            };
            int? k = Int(root, "top_logprobs");
            if (k is < 0 or > 20) throw new ApiError(400, $"top_logprobs must be between 0 and 20 (got {k})", "top_logprobs");
            if (k != null && !on) throw new ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs");
            if (on) top = k ?? 0;
        }
        else if (Int(root, "logprobs") is int k)
        {
            if (k is < 0 or > 5) throw new ApiError(400, $"logprobs must be between 0 and 5 (got {k})", "logprobs");
            top = k;
        }

        if (Int(root, "n") is int n)
        {
            if (n is < 1 or > MaxChoices) throw new ApiError(400, $"n must be between 1 and {MaxChoices} (got {n})", "n");
            if (n > 1 && Stream) throw new ApiError(400, "n > 1 is served without streaming (stream: false)", "n");
            Choices = n;
        }

        int? budget = Int(root, "reasoning_budget");
        if (budget < 0) throw new ApiError(400, $"reasoning_budget must be >= 0 (got {budget})", "reasoning_budget");

        Generation = Generation with
        {
            Sampling = sampling, TopLogprobs = top, Grammar = ResponseFormat(root), ReasoningBudget = budget ?? Generation.ReasoningBudget,
        };
    }

    /// <summary>response_format: "text" (nothing), "json_object" (any object), "json_schema" (its schema).</summary>
    private static Grammar? ResponseFormat(JsonElement root)
    {
        if (!root.TryGetProperty("response_format", out var rf) || rf.ValueKind == JsonValueKind.Null) return null;
        if (rf.ValueKind != JsonValueKind.Object || !rf.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            throw new ApiError(400, "response_format must be an object with a type", "response_format");
        switch (type.GetString())
        {
            case "text": return null;
            case "json_object": return JsonSchemaGrammar.AnyObject();
            case "json_schema":
                if (!rf.TryGetProperty("json_schema", out var js) || js.ValueKind != JsonValueKind.Object
                    || !js.TryGetProperty("schema", out var schema) || schema.ValueKind != JsonValueKind.Object)
                    throw new ApiError(400, "response_format.json_schema.schema must be a JSON schema object", "response_format.json_schema.schema");
                // strict or not, the answer is held to the schema: constrained sampling cannot do less
                try { return Grammar.Parse(JsonSchemaGrammar.ToGbnf(schema)); }
                catch (Exception e) when (e is ArgumentException or FormatException)
                {
                    throw new ApiError(400, $"response_format.json_schema.schema: {e.Message}", "response_format.json_schema.schema");
                }
            default:
                throw new ApiError(400, $"response_format type '{type.GetString()}' is unknown (expected text, json_object or json_schema)", "response_format.type");
        }
    }
}
