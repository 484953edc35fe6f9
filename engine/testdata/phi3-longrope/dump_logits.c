// dump_logits MODEL.gguf N_CTX OUT.f32 id...: logits of every position, one llama_decode.
#include "llama.h"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage\n"); return 2; }
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    struct llama_context_params cp = llama_context_default_params();
    int n = argc - 4;
    cp.n_ctx = atoi(argv[2]); cp.n_batch = cp.n_ubatch = n < 512 ? 512 : n;
    cp.n_threads = cp.n_threads_batch = 1; cp.flash_attn = false;
    cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    struct llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = atoi(argv[4 + i]); b.pos[i] = i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b)) return 1;
    int V = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE *f = fopen(argv[3], "wb");
    for (int i = 0; i < n; i++) fwrite(llama_get_logits_ith(ctx, i), sizeof(float), V, f);
    fclose(f);
    return 0;
}
