// K live buffers; each: malloc 17-31 MiB, fill `used`%, realloc to 1.5x-2.5x (into >32 MiB), fill tail page, free the oldest
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#define MiB (1ul<<20)
static uint64_t R = 88172645463325252ull;
static uint64_t rnd(void) { R ^= R << 13; R ^= R >> 7; R ^= R << 17; return R; }
int main(int argc,char**argv){
  int K=atoi(argv[1]), N=atoi(argv[2]), used=atoi(argv[3]);
  char* volatile* b=calloc(K,sizeof*b);
  for(int n=0;n<N;n++){ int k=n%K; free(b[k]); size_t s=17*MiB+rnd()%(14*MiB); char*p=malloc(s); memset(p,1,s/100*used+1);
    size_t ns=s+s/2+rnd()%s; p=realloc(p,ns); p[ns-1]=2; b[k]=p; }
  return 0; }
