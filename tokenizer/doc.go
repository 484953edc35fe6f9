// Package tokenizer implements Hugging Face tokenizer.json tokenizers,
// a streaming detokenizer, and chat templates from tokenizer_config.json.
//
// The goal is id-for-id agreement with the Hugging Face tokenizers library
// (and transformers, for what tokenizer_config.json changes): a component
// this package does not implement is reported as an error naming it, never
// approximated.
//
// Encoding follows the reference pipeline:
//
//  1. added tokens are cut out of the raw text (leftmost, then longest
//     match; lstrip, rstrip and single_word honoured);
//  2. each remaining segment is normalized (NFC, NFKC, NFD, NFKD,
//     Lowercase, Strip, Replace, Prepend, Precompiled, Sequence), and added
//     tokens marked normalized are cut out of the result;
//  3. the pre-tokenizer splits it into words (ByteLevel, Split, Metaspace,
//     Digits, Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer,
//     CharDelimiterSplit, Sequence);
//  4. the model turns each word into ids (BPE, and WordPiece, WordLevel,
//     Unigram), through a per-word cache;
//  5. with addSpecial, the post-processor's tokens go around the ids
//     (TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel,
//     Sequence), overridden by add_bos_token/add_eos_token from
//     tokenizer_config.json when present.
//
// The split patterns of GPT-2, Llama 3 and Qwen 2/3 use a lookahead that
// Go's regexp lacks; they run on hand-written scanners (scanner.go), checked
// against github.com/dlclark/regexp2 running the original pattern, which
// handles any other pattern.
//
// Decoding runs the decoder (ByteLevel, Metaspace, Replace, ByteFallback,
// Fuse, Strip, WordPiece, Sequence) over the token strings, then
// transformers' clean_up_tokenization when the config asks for it. A Stream
// gives the same text piece by piece as ids arrive.
package tokenizer
