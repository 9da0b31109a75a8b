// T threads, each running ring2's drifting-size ring (tests/findings/hunt25/ring2.c) on its own ring.
// usage: ./ringt T N K P
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
static long N;static int K,P;
static void*run(void*a){unsigned long s=12345+(long)a*7919;
 long R[][2]={{1<<20,2<<20},{300<<10,600<<10},{3<<20,6<<20},{600<<10,1200<<10},{2<<20,4<<20},{257<<10,512<<10}};
 void**r=calloc(K,sizeof(void*));
 for(long i=0;i<N;i++){long*g=R[((i+(long)a*P/2)/P)%6];s^=s<<13;s^=s>>7;s^=s<<17;size_t z=g[0]+s%(g[1]-g[0]);int k=i%K;free(r[k]);r[k]=malloc(z);memset(r[k],1,z);}
 for(int k=0;k<K;k++)free(r[k]);free(r);return 0;}
int main(int c,char**v){int T=atoi(v[1]);N=atol(v[2]);K=atoi(v[3]);P=atoi(v[4]);pthread_t t[64];
 for(long i=0;i<T;i++)pthread_create(&t[i],0,run,(void*)i);for(int i=0;i<T;i++)pthread_join(t[i],0);puts("ok");return 0;}
