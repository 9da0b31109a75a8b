// ring of K live fully touched buffers; size range drifts each phase: ranges cycle through a list
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(int c,char**v){ long N=atol(v[1]); int K=atoi(v[2]); int P=atoi(v[3]); // ops per phase
 long R[][2]={{1<<20,2<<20},{300<<10,600<<10},{3<<20,6<<20},{600<<10,1200<<10},{2<<20,4<<20},{257<<10,512<<10}}; int NR=6;
 void**r=calloc(K,sizeof(void*)); unsigned long s=12345;
 for(long i=0;i<N;i++){ long* g=R[(i/P)%NR]; s^=s<<13;s^=s>>7;s^=s<<17; size_t z=g[0]+s%(g[1]-g[0]); int k=i%K; free(r[k]); r[k]=malloc(z); memset(r[k],1,z);} puts("ok"); return 0;}
