// phases: 150 MB of 16-216 B blocks written and freed; then one block of 33-300 MiB, 5% touched, freed (hunt31/alt.c with small blocks). ./alt_small 20 5
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#define MiB (1ul<<20)
static uint64_t R = 88172645463325252ull;
static uint64_t rnd(void) { R ^= R << 13; R ^= R >> 7; R ^= R << 17; return R; }
static void* sm[2000000];
int main(int argc,char**argv){ int N=atoi(argv[1]); int touchbig=atoi(argv[2]);
  for(int n=0;n<N;n++){
    int k=0; for(size_t tot=0; tot<(150ul<<20); k++){ size_t s=16+rnd()%200; sm[k]=malloc(s); memset(sm[k],1,s); tot+=s; }
    for(int i=0;i<k;i++) free(sm[i]);
    size_t bs=33*MiB+rnd()%(267*MiB); char* volatile b=malloc(bs); memset(b,2,bs/100*touchbig+1); free(b);
  }
  return 0; }
