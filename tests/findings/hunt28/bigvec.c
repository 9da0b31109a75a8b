// gcc -O2 bigvec.c -o bigvec && ../memory/run5.sh ./bigvec 4 1.5 200 5   (and ./bigvec 8 2 64 10)
// K buffers grown in turn by GROW factor (realloc, new bytes written) from 1 MiB to MAX MiB, ROUNDS times.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int c,char**a){int K=atoi(a[1]);double g=atof(a[2]);size_t mx=(size_t)atol(a[3])<<20;int R=atoi(a[4]);long moves=0;
 for(int r=0;r<R;r++){char*p[16]={0};size_t n[16]={0};int live=K;
  while(live){live=0;for(int k=0;k<K;k++){size_t m=n[k]?(size_t)(n[k]*g):1<<20;if(m>mx)continue;live++;char*o=p[k];p[k]=realloc(p[k],m);if(o&&o!=p[k])moves++;memset(p[k]+n[k],k,m-n[k]);n[k]=m;}}
  for(int k=0;k<K;k++)free(p[k]);}
 printf("moves %ld\n",moves);}
