// Package extract pulls comparable answers out of model generations, per
// MoCo task type, for the collaboration methods that compare answers
// (majority vote, routers trained on which model solves a dev item) and for
// the evaluation, which may reuse it. It follows MoCo's evaluation code
// (model_collaboration/data/eval.py): extract_answer_text for exact-match
// and F1 tasks, parse_model_response_mcq for multiple choice, and
// normalize_answer (SQuAD's: lowercase, no punctuation, no articles,
// single spaces) to compare.
package extract
