package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/mocolab/moco/collab"
)

// APIError is an error in OpenAI's shape, with the HTTP status it is sent
// with.
type APIError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *APIError) Error() string { return e.Message }

func apiErr(status int, typ, code, param, format string, args ...any) *APIError {
	e := &APIError{Status: status, Message: fmt.Sprintf(format, args...), Type: typ}
	if code != "" {
		e.Code = &code
	}
	if param != "" {
		e.Param = &param
	}
	return e
}

// badRequest is a 400 invalid_request_error about param.
func badRequest(param, format string, args ...any) *APIError {
	return apiErr(http.StatusBadRequest, "invalid_request_error", "", param, format, args...)
}

// Limits bound what one request may ask for. Zero values mean the
// defaults named.
type Limits struct {
	MaxBodyBytes     int64 // request body (1 MiB)
	MaxPromptTokens  int   // prompt tokens (0: the model's context)
	MaxTokens        int   // max_tokens a request may ask for (4096)
	DefaultMaxTokens int   // max_tokens when a request gives none (256), at most what the context leaves
	MaxN             int   // choices per request (8)
	MaxMessages      int   // chat messages per request (256)
}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = 1 << 20
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = 4096
	}
	if l.DefaultMaxTokens <= 0 {
		l.DefaultMaxTokens = min(256, l.MaxTokens)
	}
	if l.MaxN <= 0 {
		l.MaxN = 8
	}
	if l.MaxMessages <= 0 {
		l.MaxMessages = 256
	}
	return l
}

// genRequest is a parsed completion or chat request, the same for both
// endpoints.
type genRequest struct {
	Chat         bool
	Model        string
	Prompt       string           // completions
	Messages     []collab.Message // chat
	MaxTokens    int
	MaxTokensSet bool // given by the request, not the server's default
	Temperature  float64
	TopP         float64
	Seed         uint64
	SeedSet      bool
	Stop         []string
	N            int
	Stream       bool
	StreamUsage  bool // stream_options.include_usage
	Logprobs     bool
	TopLogprobs  int
}

// rawRequest holds the fields of both endpoints as sent. Pointers tell an
// absent field from a zero; polymorphic fields stay raw until checked.
type rawRequest struct {
	Model               *string          `json:"model"`
	Prompt              json.RawMessage  `json:"prompt"`
	Messages            json.RawMessage  `json:"messages"`
	MaxTokens           *int64           `json:"max_tokens"`
	MaxCompletionTokens *int64           `json:"max_completion_tokens"`
	Temperature         *float64         `json:"temperature"`
	TopP                *float64         `json:"top_p"`
	Seed                *int64           `json:"seed"`
	Stop                json.RawMessage  `json:"stop"`
	N                   *int64           `json:"n"`
	Stream              *bool            `json:"stream"`
	StreamOptions       *json.RawMessage `json:"stream_options"`
	Logprobs            json.RawMessage  `json:"logprobs"`
	TopLogprobs         *int64           `json:"top_logprobs"`
	// Accepted at their neutral values only: anything else is refused
	// rather than silently ignored.
	PresencePenalty  *float64        `json:"presence_penalty"`
	FrequencyPenalty *float64        `json:"frequency_penalty"`
	LogitBias        json.RawMessage `json:"logit_bias"`
	Echo             *bool           `json:"echo"`
	BestOf           *int64          `json:"best_of"`
	Suffix           *string         `json:"suffix"`
	Tools            json.RawMessage `json:"tools"`
	ResponseFormat   json.RawMessage `json:"response_format"`
}

// parseRequest decodes and checks a request body for the chat or the
// completions endpoint. Unknown fields are ignored (clients send many
// optional ones); known fields with values moco cannot honour are errors.
func parseRequest(body []byte, chat bool, lim Limits) (*genRequest, *APIError) {
	lim = lim.withDefaults()
	var raw rawRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, badRequest("", "the request body is not valid JSON for this endpoint: %v", err)
	}
	if dec.More() {
		return nil, badRequest("", "the request body holds more than one JSON value")
	}
	r := &genRequest{Chat: chat, N: 1, TopP: 1, Temperature: 1}
	if raw.Model == nil || *raw.Model == "" {
		return nil, badRequest("model", "you must provide a model parameter (GET /v1/models lists them)")
	}
	r.Model = *raw.Model
	if chat {
		if len(raw.Prompt) > 0 {
			return nil, badRequest("prompt", "chat completions take messages, not a prompt (use /v1/completions for a prompt)")
		}
		msgs, err := parseMessages(raw.Messages, lim.MaxMessages)
		if err != nil {
			return nil, err
		}
		r.Messages = msgs
	} else {
		if len(raw.Messages) > 0 {
			return nil, badRequest("messages", "completions take a prompt, not messages (use /v1/chat/completions for a chat)")
		}
		p, err := parsePrompt(raw.Prompt)
		if err != nil {
			return nil, err
		}
		r.Prompt = p
	}
	r.MaxTokensSet = raw.MaxCompletionTokens != nil || raw.MaxTokens != nil
	maxParam := "max_tokens" // the field the client used, for the errors
	switch {
	case raw.MaxCompletionTokens != nil:
		maxParam = "max_completion_tokens"
		r.MaxTokens = int(min(max(*raw.MaxCompletionTokens, -1), math.MaxInt32))
		if r.MaxTokens < 1 {
			return nil, badRequest("max_completion_tokens", "max_completion_tokens must be at least 1, got %d", *raw.MaxCompletionTokens)
		}
	case raw.MaxTokens != nil:
		r.MaxTokens = int(min(max(*raw.MaxTokens, -1), math.MaxInt32))
		if r.MaxTokens < 1 {
			return nil, badRequest("max_tokens", "max_tokens must be at least 1, got %d", *raw.MaxTokens)
		}
	default:
		r.MaxTokens = lim.DefaultMaxTokens
	}
	if r.MaxTokens > lim.MaxTokens {
		return nil, badRequest(maxParam, "%s is %d, more than this server's limit of %d", maxParam, r.MaxTokens, lim.MaxTokens)
	}
	if raw.Temperature != nil {
		r.Temperature = *raw.Temperature
		if !(r.Temperature >= 0 && r.Temperature <= 2) {
			return nil, badRequest("temperature", "temperature must be between 0 and 2, got %v", r.Temperature)
		}
	}
	if raw.TopP != nil {
		r.TopP = *raw.TopP
		if !(r.TopP > 0 && r.TopP <= 1) {
			return nil, badRequest("top_p", "top_p must be greater than 0 and at most 1, got %v", r.TopP)
		}
	}
	if raw.Seed != nil {
		r.Seed, r.SeedSet = uint64(*raw.Seed), true
	}
	stop, apiErr := parseStop(raw.Stop)
	if apiErr != nil {
		return nil, apiErr
	}
	r.Stop = stop
	if raw.N != nil {
		if *raw.N < 1 || *raw.N > int64(lim.MaxN) {
			return nil, badRequest("n", "n must be between 1 and %d, got %d", lim.MaxN, *raw.N)
		}
		r.N = int(*raw.N)
	}
	if raw.Stream != nil {
		r.Stream = *raw.Stream
	}
	if raw.StreamOptions != nil && string(*raw.StreamOptions) != "null" {
		if !r.Stream {
			return nil, badRequest("stream_options", "stream_options is only allowed when stream is true")
		}
		var so struct {
			IncludeUsage *bool `json:"include_usage"`
		}
		if err := json.Unmarshal(*raw.StreamOptions, &so); err != nil {
			return nil, badRequest("stream_options", "stream_options: %v", err)
		}
		r.StreamUsage = so.IncludeUsage != nil && *so.IncludeUsage
	}
	if err := parseLogprobs(r, raw, chat); err != nil {
		return nil, err
	}
	if err := checkNeutral(raw); err != nil {
		return nil, err
	}
	return r, nil
}

func parseMessages(raw json.RawMessage, most int) ([]collab.Message, *APIError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, badRequest("messages", "messages is required: a list of {role, content} objects")
	}
	var items []struct {
		Role         *string           `json:"role"`
		Content      json.RawMessage   `json:"content"`
		ToolCalls    []json.RawMessage `json:"tool_calls"`
		FunctionCall json.RawMessage   `json:"function_call"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, badRequest("messages", "messages must be a list of {role, content} objects: %v", err)
	}
	if len(items) == 0 {
		return nil, badRequest("messages", "messages is empty")
	}
	if len(items) > most {
		return nil, badRequest("messages", "%d messages, more than this server's limit of %d", len(items), most)
	}
	out := make([]collab.Message, len(items))
	for i, it := range items {
		if it.Role == nil {
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d] has no role", i)
		}
		switch *it.Role {
		case "system", "developer", "user", "assistant":
		default:
			return nil, badRequest(fmt.Sprintf("messages[%d].role", i), "messages[%d].role %q is not supported (system, developer, user or assistant)", i, *it.Role)
		}
		role := *it.Role
		if role == "developer" { // OpenAI's newer name for system
			role = "system"
		}
		// OpenAI lets only an assistant's tool calls stand in for the
		// content; moco has no tools, and a call dropped silently would
		// leave an empty turn in the conversation.
		if len(it.ToolCalls) > 0 || len(it.FunctionCall) > 0 && string(it.FunctionCall) != "null" {
			return nil, badRequest(fmt.Sprintf("messages[%d].tool_calls", i), "messages[%d] has tool calls, which are not supported", i)
		}
		if len(it.Content) == 0 || string(it.Content) == "null" {
			return nil, badRequest(fmt.Sprintf("messages[%d].content", i), "messages[%d] has no content", i)
		}
		text, err := messageText(it.Content)
		if err != nil {
			return nil, badRequest(fmt.Sprintf("messages[%d].content", i), "messages[%d].content: %v", i, err)
		}
		out[i] = collab.Message{Role: role, Content: text}
	}
	return out, nil
}

// messageText accepts a string or a list of text parts.
func messageText(raw json.RawMessage) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("must be a string or a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", fmt.Errorf("part type %q is not supported (text only)", p.Type)
		}
		b.WriteString(*p.Text)
	}
	return b.String(), nil
}

// parsePrompt accepts a string or a list of one string.
func parsePrompt(raw json.RawMessage) (string, *APIError) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", badRequest("prompt", "prompt is required")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return "", badRequest("prompt", "prompt must be a string (token-id prompts are not supported)")
	}
	if len(list) != 1 {
		return "", badRequest("prompt", "prompt lists must hold exactly one string (send one request per prompt), got %d", len(list))
	}
	return list[0], nil
}

func parseStop(raw json.RawMessage) ([]string, *APIError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if s == "" {
			return nil, nil
		}
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, badRequest("stop", "stop must be a string or a list of strings")
	}
	if len(list) > 4 {
		return nil, badRequest("stop", "at most 4 stop sequences, got %d", len(list))
	}
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// parseLogprobs reads logprobs as each endpoint has it: a boolean with
// top_logprobs (0-20) for chat, an integer 0-5 for completions.
func parseLogprobs(r *genRequest, raw rawRequest, chat bool) *APIError {
	lp := raw.Logprobs
	if chat {
		if len(lp) > 0 && string(lp) != "null" {
			var b bool
			if err := json.Unmarshal(lp, &b); err != nil {
				return badRequest("logprobs", "logprobs must be a boolean for chat completions")
			}
			r.Logprobs = b
		}
		if raw.TopLogprobs != nil {
			if *raw.TopLogprobs < 0 || *raw.TopLogprobs > 20 {
				return badRequest("top_logprobs", "top_logprobs must be between 0 and 20, got %d", *raw.TopLogprobs)
			}
			if !r.Logprobs {
				return badRequest("top_logprobs", "top_logprobs needs logprobs set to true")
			}
			r.TopLogprobs = int(*raw.TopLogprobs)
		}
		return nil
	}
	if raw.TopLogprobs != nil {
		return badRequest("top_logprobs", "completions take logprobs (an integer 0-5), not top_logprobs")
	}
	if len(lp) > 0 && string(lp) != "null" {
		var n int64
		if err := json.Unmarshal(lp, &n); err != nil || n < 0 || n > 5 {
			return badRequest("logprobs", "logprobs must be an integer between 0 and 5 for completions")
		}
		r.Logprobs, r.TopLogprobs = true, int(n)
	}
	return nil
}

// checkNeutral refuses parameters moco does not implement unless they are
// at the value that means "off".
func checkNeutral(raw rawRequest) *APIError {
	nz := func(p *float64) bool { return p != nil && *p != 0 }
	switch {
	case nz(raw.PresencePenalty):
		return badRequest("presence_penalty", "presence_penalty is not supported (only 0)")
	case nz(raw.FrequencyPenalty):
		return badRequest("frequency_penalty", "frequency_penalty is not supported (only 0)")
	case len(raw.LogitBias) > 0 && string(raw.LogitBias) != "null" && string(raw.LogitBias) != "{}":
		return badRequest("logit_bias", "logit_bias is not supported")
	case raw.Echo != nil && *raw.Echo:
		return badRequest("echo", "echo is not supported")
	case raw.BestOf != nil && *raw.BestOf > 1:
		return badRequest("best_of", "best_of is not supported (only 1)")
	case raw.Suffix != nil && *raw.Suffix != "":
		return badRequest("suffix", "suffix is not supported")
	case len(raw.Tools) > 0 && string(raw.Tools) != "null" && string(raw.Tools) != "[]":
		return badRequest("tools", "tools are not supported")
	}
	if len(raw.ResponseFormat) > 0 && string(raw.ResponseFormat) != "null" {
		var rf struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw.ResponseFormat, &rf); err != nil || rf.Type != "text" {
			return badRequest("response_format", "response_format is not supported (only {\"type\": \"text\"})")
		}
	}
	return nil
}

// The response bodies.

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

// Completions.

type completionLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float64            `json:"token_logprobs"`
	TopLogprobs   []map[string]float64 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

type completionChoice struct {
	Text         string              `json:"text"`
	Index        int                 `json:"index"`
	Logprobs     *completionLogprobs `json:"logprobs"`
	FinishReason *string             `json:"finish_reason"`
}

type completion struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *usage             `json:"usage,omitempty"`
}

// Chat.

type chatTopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type chatTokenLogprob struct {
	Token       string           `json:"token"`
	Logprob     float64          `json:"logprob"`
	Bytes       []int            `json:"bytes"`
	TopLogprobs []chatTopLogprob `json:"top_logprobs"`
}

type chatLogprobs struct {
	Content []chatTokenLogprob `json:"content"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

type chatChoice struct {
	Index        int           `json:"index"`
	Message      *chatMessage  `json:"message,omitempty"`
	Delta        *chatDelta    `json:"delta,omitempty"`
	Logprobs     *chatLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   *usage       `json:"usage,omitempty"`
}
