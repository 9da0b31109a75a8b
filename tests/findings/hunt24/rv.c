// realloc-heavy vectors in 2 threads
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
static int NV=2000, R=20;
void* w(void*a){ unsigned long s=(long)a+7; 
 #define X (s^=s<<13,s^=s>>7,s^=s<<17,s)
 for(int r=0;r<R;r++){ char**v=calloc(NV,sizeof(char*)); size_t*n=calloc(NV,sizeof(size_t));
  for(long k=0;k<NV*200;k++){int i=X%NV; size_t nn=n[i]+1+X%200; v[i]=realloc(v[i],nn); v[i][nn-1]=1; n[i]=nn;}
  for(int i=0;i<NV;i++) free(v[i]); free(v); free(n);} return 0;}
int main(int c,char**v){ if(c>1)NV=atoi(v[1]); if(c>2)R=atoi(v[2]); int T=c>3?atoi(v[3]):2; pthread_t t[8]; for(long i=0;i<T;i++) pthread_create(&t[i],0,w,(void*)i); for(int i=0;i<T;i++) pthread_join(t[i],0); puts("ok"); return 0;}
