// phases: 120 x 0.5-2 MiB blocks touched and freed; then one big block of 33-300 MiB (cache misses), touched, freed
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#define MiB (1ul<<20)
static uint64_t R = 88172645463325252ull;
static uint64_t rnd(void) { R ^= R << 13; R ^= R >> 7; R ^= R << 17; return R; }
int main(int argc,char**argv){ int N=atoi(argv[1]); int touchbig=atoi(argv[2]);
  char* volatile a[120];
  for(int n=0;n<N;n++){
    for(int i=0;i<120;i++){ size_t s=MiB/2+rnd()%(3*MiB/2); a[i]=malloc(s); memset(a[i],1,s);} 
    for(int i=0;i<120;i++) free(a[i]);
    size_t bs=33*MiB+rnd()%(267*MiB); char* volatile b=malloc(bs); memset(b,2,bs/100*touchbig+1); free(b);
  }
  return 0; }
